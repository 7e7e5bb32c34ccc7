"""Build (once) the virtualenv in which tests run the published ``authsec-sdk``, and print its python.

The SDK needs ``mcp<2`` for its runtime API while this project pins mcp 2.x, so it cannot share our venv.
The venv lives under the git-ignored ``.local/`` and is keyed by the pinned versions: a changed pin builds a
new one. Run ``python scripts/sdk_venv.py`` to build it ahead of the tests; tests call `ensure()`.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the published SDK is installed with: the version the issue names, and the mcp 1.x its runtime imports.
REQUIREMENTS = ("authsec-sdk==4.7.3", "mcp>=1.20,<2")


def venv_dir() -> Path:
    key = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:12]
    return ROOT / ".local" / f"sdk-venv-{key}"


def ensure() -> Path:
    """The python of a venv holding `REQUIREMENTS`, built on first call (safe across concurrent callers)."""
    target = venv_dir()
    python = target / "bin" / "python"
    marker = target / ".complete"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".sdk-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(target)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                check=True,
            )
            marker.write_text("\n".join(REQUIREMENTS) + "\n")
    return python


if __name__ == "__main__":
    print(ensure())
    sys.exit(0)
