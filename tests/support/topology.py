"""Several web nodes behind HAProxy, with a Celery worker and beat: the production topology, on free ports.

`Topology` starts N uvicorn web nodes exactly as ``make run`` starts its one (``authsec_site.asgi:application``
with scripts/devstack.py's UVICORN_FLAGS; each node's lifespan starts its own audit writer process), Debian's
HAProxy in front with deploy/haproxy.cfg (the shipped file, its node list rewritten for these nodes), and one
Celery worker and beat. The backing services are parameters (`Backing`), so a caller can point the topology at
throwaway Postgres/Redis/OpenBao servers it stops and starts itself. It stops exactly the processes it started
(each in a process group of its own, by PID) when its block ends.

Usable without pytest or a configured Django (bench/ scripts import it)::

    with Topology(Backing.from_env(), workdir=Path("/tmp/topo")) as topo:
        httpx.get(topo.url + "/t/acme/mcp/demo")      # through HAProxy
        topo.kill_node("web1")                          # SIGKILL to that node's uvicorn process
        topo.restart_node("web1")                       # same port; returns once HAProxy sees it up

The test fixture wrapping it is `tests/topology/conftest.py`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
HAPROXY_ERRORS = ROOT / "deploy" / "haproxy-errors"
HAPROXY = "/usr/sbin/haproxy"
NODE_HEADER = "X-AuthSec-Node"  # set by HAProxy when AUTHSEC_LB_SHOW_NODE=1: the server name (web1, web2, …)
_NODES_BLOCK = re.compile(r"^(?P<indent>[ \t]*)# BEGIN web nodes\n.*?^[ \t]*# END web nodes\n", re.M | re.S)


class TopologyError(RuntimeError):
    """A process of the topology did not start, or HAProxy did not see a node change state in time."""


@dataclass(frozen=True)
class Backing:
    """The backing services every process of the topology uses."""

    database_url: str
    redis_url: str
    vault_addr: str
    vault_token: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Backing:
        env = os.environ if environ is None else environ
        missing = [name for name in ("DATABASE_URL", "REDIS_URL", "VAULT_ADDR", "VAULT_TOKEN") if not env.get(name)]
        if missing:
            raise TopologyError(f"Backing.from_env: {', '.join(missing)} not set")
        return cls(env["DATABASE_URL"], env["REDIS_URL"], env["VAULT_ADDR"], env["VAULT_TOKEN"])

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            # Broker and results on the same Redis, whatever the caller's environment says.
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": self.redis_url,
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_token,
        }


@dataclass
class Proc:
    """One process (group) the topology started: a web node, the worker, beat or HAProxy."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def url(self) -> str:
        """The node's own address (bypassing HAProxy)."""
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uvicorn_flags() -> list[str]:
    """UVICORN_FLAGS of scripts/devstack.py (read from its text: importing it would run nothing, but keep it
    a plain read so this module needs no Django or pytest)."""
    text = (ROOT / "scripts" / "devstack.py").read_text()
    match = re.search(r"^UVICORN_FLAGS = (\[.*?\])$", text, re.M)
    if match is None:
        raise TopologyError("UVICORN_FLAGS not found in scripts/devstack.py")
    return [part.strip().strip("\"'") for part in match.group(1).strip("[]").split(",") if part.strip()]


def render_haproxy_cfg(nodes: Sequence[tuple[str, int]], source: Path = HAPROXY_CFG) -> str:
    """deploy/haproxy.cfg with the lines between its "BEGIN web nodes" and "END web nodes" markers replaced by
    one `server` line per (name, port) on 127.0.0.1; the rest of the file is used as shipped."""
    text = source.read_text()
    match = _NODES_BLOCK.search(text)
    if match is None:
        raise TopologyError(f"{source}: no '# BEGIN web nodes' … '# END web nodes' block")
    indent = match.group("indent")
    lines = [f"{indent}# BEGIN web nodes\n"]
    lines += [f"{indent}server {name} 127.0.0.1:{port} check\n" for name, port in nodes]
    lines.append(f"{indent}# END web nodes\n")
    return text[: match.start()] + "".join(lines) + text[match.end() :]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/livez", timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Topology:
    """N web nodes (``web1`` …), HAProxy, a Celery worker and beat; see the module docstring.

    `env` is added to every process's environment (after the defaults: DEBUG off, AUTHSEC_PUBLIC_URL = HAProxy's
    URL, TRUSTED_PROXIES = 127.0.0.1, one SECRET_KEY for all). `worker_args` go to ``celery worker`` (default:
    ``--concurrency 1``, prefork as ``make run``)."""

    def __init__(
        self,
        backing: Backing,
        *,
        workdir: Path,
        nodes: int = 2,
        env: Mapping[str, str] | None = None,
        worker: bool = True,
        beat: bool = True,
        worker_args: Sequence[str] = ("--concurrency", "1"),
        start_timeout: float = 60.0,
    ) -> None:
        if not os.path.exists(HAPROXY):
            raise TopologyError(f"{HAPROXY} is missing: run `make haproxy` (Debian's haproxy package)")
        self.backing = backing
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.lb_port = free_port()
        self.url = f"http://127.0.0.1:{self.lb_port}"
        # A unix socket path is limited to ~100 bytes: keep it short whatever `workdir` is.
        self._sock_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"authsec-lb-{secrets.token_hex(4)}"
        self.admin_socket = self._sock_dir / "admin.sock"
        self.queue = f"authsec-topology-{secrets.token_hex(4)}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        base.update(backing.env())
        base.update(
            {
                "DJANGO_SETTINGS_MODULE": "authsec_site.settings",
                "DEBUG": "0",
                "AUTHSEC_PUBLIC_URL": self.url,
                "TRUSTED_PROXIES": "127.0.0.1",
                "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
                "CELERY_TASK_DEFAULT_QUEUE": self.queue,
                "CELERY_BEAT_SCHEDULE_FILENAME": str(self.workdir / "celerybeat-schedule"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        base.update(env or {})
        self.base_env = base
        self.nodes: dict[str, Proc] = {}
        for index in range(1, nodes + 1):
            name = f"web{index}"
            port = free_port()
            args = [sys.executable, "-m", "uvicorn", "authsec_site.asgi:application", "--host", "127.0.0.1",
                    "--port", str(port), *uvicorn_flags()]  # fmt: skip
            self.nodes[name] = Proc(name, args, self._env_for(name), self.workdir / f"{name}.log", port)
        celery = [sys.executable, "-m", "celery", "-A", "authsec_site"]
        self.others: dict[str, Proc] = {}
        if worker:
            args = [*celery, "worker", "-l", "info", "-Q", self.queue, "-n", f"{self.queue}@%h", *worker_args]
            self.others["worker"] = Proc("worker", args, self._env_for("worker"), self.workdir / "worker.log")
        if beat:
            self.others["beat"] = Proc("beat", [*celery, "beat", "-l", "info"], self._env_for("beat"),
                                       self.workdir / "beat.log")  # fmt: skip
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(render_haproxy_cfg([(name, node.port or 0) for name, node in self.nodes.items()]))
        lb_env = {
            **os.environ,
            "AUTHSEC_LB_BIND": f"127.0.0.1:{self.lb_port}",
            "AUTHSEC_LB_ADMIN_SOCKET": str(self.admin_socket),
            "AUTHSEC_LB_SHOW_NODE": "1",
            "AUTHSEC_LB_MAXCONN": "2000",  # within a test machine's open-files limit
            "AUTHSEC_LB_ERRORS": str(HAPROXY_ERRORS),
        }
        self.haproxy = Proc("haproxy", [HAPROXY, "-db", "-f", str(cfg)], lb_env, self.workdir / "haproxy.log",
                            self.lb_port)  # fmt: skip
        self._started: list[Proc] = []

    def _env_for(self, name: str) -> dict[str, str]:
        """Each process has its own Prometheus multiprocess directory, as it would on its own machine."""
        metrics = self.workdir / "metrics" / name
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        return {**self.base_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}

    # --- lifecycle --------------------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Topology:
        """Start every process (the nodes in parallel), then HAProxy; return when HAProxy sees every node up."""
        for proc in [*self.nodes.values(), *self.others.values()]:
            self._spawn(proc)
        for node in self.nodes.values():
            self._wait(node, lambda node=node: _live(node.url))
        self._sock_dir.mkdir(mode=0o700, exist_ok=True)
        self._spawn(self.haproxy)
        self._wait(self.haproxy, lambda: self.admin_socket.exists() and _listening(self.lb_port))
        for name in self.nodes:
            self.wait_lb(name, up=True)
        if "worker" in self.others:
            worker = self.others["worker"]
            self._wait(worker, lambda: " ready." in worker.tail(20000))
        return self

    def stop(self) -> None:
        """Stop every process group this topology started: SIGTERM to all (HAProxy first), then wait for each
        and SIGKILL what is left after 15 s."""
        started, self._started = self._started[::-1], []
        for proc in started:
            _signal_group(proc, signal.SIGTERM)
        for proc in started:
            self._stop_group(proc)
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _spawn(self, proc: Proc) -> None:
        with proc.log.open("ab") as out:
            proc.popen = subprocess.Popen(
                proc.args, cwd=ROOT, env=proc.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._started.append(proc)

    @staticmethod
    def _stop_group(proc: Proc, timeout: float = 15.0) -> None:
        """SIGTERM to the process group this topology created for `proc` (it holds the node's audit process too,
        even once orphaned), SIGKILL to what is left after `timeout`."""
        popen = proc.popen
        if popen is None:
            return
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=timeout)
        _wait_group_gone(popen.pid, timeout)
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)

    def _wait(self, proc: Proc, ready: object, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            if not proc.alive():
                raise TopologyError(f"{proc.name} exited while starting:\n{proc.tail()}")
            time.sleep(0.1)
        raise TopologyError(f"{proc.name} was not ready within {timeout or self.start_timeout:.0f}s:\n{proc.tail()}")

    # --- faults -----------------------------------------------------------------------------------------

    def node(self, name: str) -> Proc:
        return self.nodes[name]

    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL by default) to the node's uvicorn process only, as a crash or the OOM killer
        would: its audit process is left to notice the end of its pipe. Returns once the process has exited."""
        node = self.nodes[name]
        assert node.popen is not None
        with contextlib.suppress(ProcessLookupError):
            node.popen.send_signal(sig)
        node.popen.wait(timeout=30)

    def restart_node(self, name: str, *, wait_lb: bool = True) -> None:
        """Start the node again on its port (after `kill_node`); returns once HAProxy routes to it again."""
        node = self.nodes[name]
        if node.alive():
            raise TopologyError(f"{name} is still running")
        if node.popen is not None:
            # The killed node's audit process writes what it received, then exits at the end of its pipe: let
            # it finish (up to 30 s) before anything left of the old group is stopped.
            _wait_group_gone(node.popen.pid, 30.0)
            self._stop_group(node, timeout=10)
            with contextlib.suppress(ValueError):
                self._started.remove(node)
        self._spawn(node)
        self._wait(node, lambda: _live(node.url))
        if wait_lb:
            self.wait_lb(name, up=True)

    # --- HAProxy's view ---------------------------------------------------------------------------------

    def haproxy_command(self, command: str) -> str:
        """One command on HAProxy's runtime API (the admin socket of deploy/haproxy.cfg)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def lb_status(self) -> dict[str, str]:
        """Each node's state as HAProxy sees it: "UP", "DOWN", "UP 1/2", "NOLB", … (from `show stat`)."""
        lines = self.haproxy_command("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise TopologyError(f"unexpected `show stat` answer: {lines[:2]}")
        header = lines[0][2:].split(",")
        pxname, svname, status = header.index("pxname"), header.index("svname"), header.index("status")
        states = {}
        for line in lines[1:]:
            cells = line.split(",")
            if len(cells) > status and cells[pxname] == "authsec_web" and cells[svname] in self.nodes:
                states[cells[svname]] = cells[status]
        return states

    def wait_lb(self, name: str, *, up: bool, timeout: float = 20.0) -> None:
        """Until HAProxy's health checks mark node `name` fully up (or down)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.lb_status().get(name, "")
            if (state == "UP") if up else state.startswith("DOWN"):
                return
            if not self.haproxy.alive():
                raise TopologyError(f"haproxy exited:\n{self.haproxy.tail()}")
            time.sleep(0.1)
        raise TopologyError(f"HAProxy still sees {name} as {state!r} after {timeout:.0f}s:\n{self.haproxy.tail()}")

    def set_lb_state(self, name: str, state: str) -> None:
        """HAProxy's administrative state of node `name`: "ready", "drain" (only requests stuck to it by their
        Mcp-Session-Id) or "maint" (nothing)."""
        answer = self.haproxy_command(f"set server authsec_web/{name} state {state}").strip()
        if answer:
            raise TopologyError(f"HAProxy refused to set {name} to {state}: {answer}")

    @contextlib.contextmanager
    def only(self, name: str) -> Iterator[Proc]:
        """For the block, HAProxy sends every request that is not stuck to another node to node `name` (the
        others drain: they keep their own MCP sessions' requests). Shows which node served what, by design."""
        others = [other for other in self.nodes if other != name]
        for other in others:
            self.set_lb_state(other, "drain")
        try:
            yield self.nodes[name]
        finally:
            for other in others:
                self.set_lb_state(other, "ready")

    # --- what runs ----------------------------------------------------------------------------------------

    def processes(self) -> dict[str, list[int]]:
        """The PIDs of each started process group, leader first (a node's audit process, the worker's pool
        children): for sampling memory (/proc/<pid>/status)."""
        found: dict[str, list[int]] = {}
        for proc in [*self.nodes.values(), *self.others.values(), self.haproxy]:
            if proc.popen is not None and proc in self._started:
                found[proc.name] = _group_members(proc.popen.pid)
        return found

    @contextlib.contextmanager
    def node_down(self, name: str) -> Iterator[Proc]:
        """`kill_node` for the block, then `restart_node`."""
        self.kill_node(name)
        try:
            yield self.nodes[name]
        finally:
            self.restart_node(name)


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid`, the leader first (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, …
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members, key=lambda pid: (pid != pgid, pid))


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _signal_group(proc: Proc, sig: int) -> None:
    """`sig` to the process group created for `proc` (start_new_session: its id is the leader's pid)."""
    if proc.popen is not None and _group_members(proc.popen.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
