"""Backing services of our own to break on purpose (tests/reliability/, bench/faults_bench.py).

Never the machine's Postgres, Redis or anyone's OpenBao: every fault is injected into something started here
on a free port.

- `ThrowawayRedis`: Debian's ``redis-server`` with no persistence (``--save '' --appendonly no``), stopped and
  started again on the same port (a restart loses its data, as a real one without persistence does).
- `ThrowawayPostgres`: a cluster of our own (``initdb`` + ``pg_ctl`` as the ``postgres`` user when run as
  root, which initdb refuses), restarted with ``pg_ctl restart -m fast``.
- `ThrowawayOpenBao`: an OpenBao with single-node raft storage in a temp dir (OpenBao 2 has no "file"
  storage), initialised and unsealed here, so a stop and a start keep its data (a dev server forgets all).
- `TcpGate`: a TCP relay in front of a service of the test suite. Closing it resets every open connection and
  refuses new ones, which is what a client sees of a stopped or restarting server; the server behind it never
  stops. The tests use it where the service holds the suite's data (the tenants' keys, AppRoles and rows live
  in the suite's OpenBao and database).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: object, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll `check()` until it is true; the seconds it took (raises TimeoutError naming `what`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():  # type: ignore[operator]
                return time.monotonic() - started
        except Exception:  # noqa: BLE001, S110 - not yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TcpGate:
    """A relay 127.0.0.1:`port` → `target` that can be closed (connections reset, new ones refused) and opened."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def open(self) -> TcpGate:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def close(self) -> None:
        """Like a server that stops: the listening socket goes, every open connection is reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)
            source.close()


class ThrowawayRedis:
    """Debian's redis-server on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ThrowawayRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: port_answers(self.port), 10, f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a crash, not a clean shutdown
            self.proc.wait()
        self.proc = None


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def postgres_bin_dir() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise FileNotFoundError("no initdb: install Debian's postgresql")


class ThrowawayPostgres:
    """A Postgres cluster of our own in a temp dir (trust auth on 127.0.0.1), on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="authsec-faults-pg-"))
        self.data = self.home / "data"
        self.bin = postgres_bin_dir()
        self.url_base = f"postgres://postgres@127.0.0.1:{self.port}"

    def _own(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.home, *self.home.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> ThrowawayPostgres:
        os.chmod(self.home, 0o755)
        self._own()
        subprocess.run(
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--no-sync"]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return self

    def _ctl(self, *args: str) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.home} -c fsync=off -c max_connections=200"
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.home / "log"), "-w",
                          "-t", "60", "-o", options, *args]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> ThrowawayPostgres:
        self._ctl("start")
        return self

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("stop", "-m", "fast")

    def create_database(self, name: str) -> str:
        subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", "-c",
             f'CREATE DATABASE "{name}"'],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return f"{self.url_base}/{name}"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


class ThrowawayOpenBao:
    """OpenBao with raft storage in a temp dir: initialised once, unsealed at every start (data kept)."""

    def __init__(self) -> None:
        self.port, self.cluster_port = free_port(), free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.home = Path(tempfile.mkdtemp(prefix="authsec-faults-bao-"))
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self._unseal_key = ""

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> dict:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.addr}/v1/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"X-Vault-Token": self.token} if self.token else {},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            raw = response.read()
        return json.loads(raw) if raw else {}

    def start(self) -> ThrowawayOpenBao:
        config = self.home / "config.hcl"
        (self.home / "data").mkdir(exist_ok=True, mode=0o700)
        config.write_text(
            f'storage "raft" {{\n  path = "{self.home / "data"}"\n  node_id = "faults"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            "disable_mlock = true\nui = false\n"
        )
        binary = Path(sys.executable).parent / "bao"
        log = (self.home / "log").open("ab")
        self.proc = subprocess.Popen(
            [str(binary) if binary.exists() else "bao", "server", f"-config={config}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: port_answers(self.port), 30, f"OpenBao on {self.port}")
        if not self._unseal_key:
            # Generating the keys and bootstrapping raft takes seconds on a busy machine.
            init = self._call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, timeout=120)
            self._unseal_key, self.token = init["keys"][0], init["root_token"]
        self._call("PUT", "sys/unseal", {"key": self._unseal_key}, timeout=60)
        wait_until(self._active, 30, "OpenBao active")
        if not self._kv_mounted():
            self._call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        return self

    def _active(self) -> bool:
        """Unsealed and the active node (a raft node needs a moment after unsealing)."""
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _kv_mounted(self) -> bool:
        return "secret/" in self._call("GET", "sys/mounts").get("data", {})

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
