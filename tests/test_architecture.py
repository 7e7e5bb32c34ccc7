"""The import contracts of pyproject.toml (`[tool.importlinter]`, docs/architecture.md) hold on this tree, and
they do catch an upward import: each test runs `lint-imports` the way a developer does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
APPS: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # The packages are found from `cwd` alone: a PYTHONPATH naming the repo would hide a temporary copy.
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", "pyproject.toml"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_contract_reports_an_upward_import(tmp_path: Path) -> None:
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # The bottom layer reaches for the top one, inside a function as hidden cycles do.
    with (tmp_path / "authsec_site" / "lib" / "client_ip.py").open("a") as module:
        module.write("\n\ndef _upward() -> None:\n    from mcp_endpoint import gate  # noqa: F401\n")

    result = _lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Apps import only downwards BROKEN" in result.stdout
    assert "authsec_site.lib is not allowed to import mcp_endpoint" in result.stdout
    assert "authsec_site.lib.client_ip -> mcp_endpoint.gate" in result.stdout
