"""The dependency locks (docs/running.md, "Dependencies"): every package at an exact version with PyPI hashes,
installed hash-checked, and every runtime package coming from the runtime lock alone."""

from __future__ import annotations

import re
from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

from tests.support.live import ROOT

ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def locked(name: str) -> dict[str, tuple[str, int]]:
    """{normalised package name: (version, number of hashes)} of a lock file."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENTRY.match(line)
        if match:
            current = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            entries[current] = (match.group(3), 0)
        elif current and HASH.search(line):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        else:
            pytest.fail(f"{name}: unexpected line {line!r}")
    return entries


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_has_an_exact_version_and_hashes(name: str) -> None:
    entries = locked(name)
    assert len(entries) > 10
    assert not [package for package, (_, hashes) in entries.items() if hashes == 0]
    text = (ROOT / name).read_text()
    # Resolved against PyPI only: no local index, find-links or file path of this machine in a lock.
    for needle in ("file:", "--index-url", "--extra-index-url", "--find-links", "/opt/", "/work/"):
        assert needle not in text, needle


def test_the_dev_lock_holds_every_runtime_package_at_the_runtime_version() -> None:
    assert "-c requirements.txt" in (ROOT / "requirements-dev.in").read_text().splitlines()
    runtime, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    assert {name: dev[name][0] for name in dev.keys() & runtime.keys()} == {
        name: runtime[name][0] for name in dev.keys() & runtime.keys()
    }
    assert "pytest-xdist" in dev and "pytest-xdist" not in runtime


def test_the_runtime_lock_has_what_kombus_redis_transport_imports() -> None:
    """Worker and beat use kombu's Redis transport, which imports `packaging` (issue 19's crash)."""
    runtime = locked("requirements.txt")
    extra = [Requirement(line) for line in requires("kombu") or []]
    needed = {
        re.sub(r"[-_.]+", "-", req.name).lower()
        for req in extra
        if req.marker and req.marker.evaluate({"extra": "redis"})
    }
    assert "packaging" in needed
    assert needed <= runtime.keys()


def test_the_makefile_installs_the_locks_hash_checked() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PIP_INSTALL := .*pip install .*--require-hashes", makefile, re.M)
    assert "$(PIP_INSTALL) -r requirements.txt\n" in makefile
    assert "$(PIP_INSTALL) -r requirements.txt -r requirements-dev.txt\n" in makefile
    assert "pip install --require-hashes -r requirements.txt" in (ROOT / "Dockerfile").read_text()
