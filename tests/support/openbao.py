"""A real OpenBao server with integrated (raft) storage, as production runs it: started from a config file,
initialised and unsealed with the `bao` CLI. The suite's dev server keeps its data in memory and cannot be
snapshotted; backup tests need this one. Stop it with `stop()` (it only ends the process it started)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.bao import bao_binary
from tests.support.live import free_port, stop_process

BAO = bao_binary()


class RaftOpenBao:
    def __init__(self, home: Path, name: str) -> None:
        self.home, self.name = home, name
        self.port, cluster_port = free_port(), free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        (home / "data").mkdir(parents=True, mode=0o700)
        self.log = home / "server.log"
        # performance_multiplier 1: one-second raft timeouts, so a single node elects itself at once (the default
        # of 5 is for busy production networks and makes every start wait ~10 s).
        (home / "config.hcl").write_text(
            f'storage "raft" {{\n  path = "{home / "data"}"\n  node_id = "{name}"\n  performance_multiplier = 1\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{cluster_port}"\n'
        )
        self.proc: subprocess.Popen | None = None
        self.unseal_key = self.root_token = ""

    def env(self, token: str | None = None) -> dict[str, str]:
        token = token if token is not None else self.root_token
        # BAO_BIN: the CLI scripts/backup.py runs (docs/operations.md).
        return {**os.environ, "VAULT_ADDR": self.addr, "BAO_ADDR": self.addr, "VAULT_TOKEN": token, "BAO_TOKEN": token,
                "BAO_BIN": BAO}  # fmt: skip

    def bao(self, *args: str, token: str | None = None) -> str:
        result = subprocess.run([BAO, *args], env=self.env(token), capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"bao {' '.join(args[:3])} failed: {result.stderr[-2000:]}"
        return result.stdout

    def health(self) -> dict:
        try:
            query = "standbyok=true&sealedcode=200&uninitcode=200"
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health?{query}", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return {}

    def start(self) -> RaftOpenBao:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [BAO, "server", f"-config={self.home / 'config.hcl'}"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait("to answer", lambda health: bool(health))
        return self

    def initialise(self) -> RaftOpenBao:
        """`bao operator init` with one key share, then unseal and wait until the node is active."""
        init = json.loads(self.bao("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json", token=""))
        self.unseal_key, self.root_token = init["unseal_keys_b64"][0], init["root_token"]
        return self.unseal(self.unseal_key)

    def unseal(self, key: str) -> RaftOpenBao:
        self.bao("operator", "unseal", key, token="")
        self._wait("to become the active node", lambda health: health.get("sealed") is False and not health["standby"])
        return self

    def wait_sealed(self) -> None:
        self._wait("to seal", lambda health: health.get("sealed") is True)

    def _wait(self, what: str, ready: object, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (
                f"OpenBao exited:\n{self.log.read_text()[-3000:]}"
            )
            if ready(self.health()):  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"OpenBao {self.name} did not {what}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
