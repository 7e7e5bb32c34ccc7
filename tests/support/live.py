"""Subprocesses of ours on the test database: the repository root, a free port, the environment, uvicorn."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


def start_asgi_server(env: dict[str, str], log: Path, port: int) -> LiveServer:
    """The root ASGI app under uvicorn on `port` with `env` (from `live_server_env`), once it accepts connections;
    stop it with `stop_process`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "authsec_site.asgi:application", "--host", "127.0.0.1", "--port",
             str(port), *uvicorn_flags()],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    wait_for_port(proc, port, log)
    return LiveServer(proc, f"http://127.0.0.1:{port}", log)


def wait_for_port(proc: subprocess.Popen, port: int, log: Path, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; fails the test if `proc` exits first."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[:3]} exited early:\n{log.read_text()[-4000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    stop_process(proc)
    pytest.fail(f"{proc.args[:3]} did not listen on {port}:\n{log.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate one process we started (and wait for it), killing it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def uvicorn_server(log: Path, **env: str) -> Iterator[LiveServer]:
    """The root ASGI app under uvicorn on a free port, on the test database, with `env` added to its environment
    (DEBUG off and `AUTHSEC_PUBLIC_URL` set unless given); stopped when the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_asgi_server(live_server_env(**{"AUTHSEC_PUBLIC_URL": url, "DEBUG": "0", **env}), log, port)
    try:
        yield server
    finally:
        stop_process(server.proc)
