"""Subprocesses of ours on the test database: the repository root, a free port, the environment, uvicorn."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_server_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess of ours that must use the test database."""
    env = os.environ.copy()
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["AUTHSEC_TEST_FAST_PASSWORD_HASHER"] = "1"  # verifies the suite's fast hashes (settings: test_ db only)
    env.update(extra)
    return env


def uvicorn_flags() -> list[str]:
    """uvicorn's flags as `make run` passes them (scripts/devstack.py), so the live-server tests cover them."""
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.UVICORN_FLAGS)


class LiveServer:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
