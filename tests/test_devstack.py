"""`scripts/devstack.py` stops what it started when a signal ends it (`kill`, `timeout`, a closed terminal), not only
when it exits on its own: an OpenBao it left running kept its port, and the next run on that port failed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.bao import free_port, listening
from tests.support.databases import Databases
from tests.support.live import ROOT

# The command devstack runs: it writes its pid, then waits to be stopped.
SLEEPER = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(1000)"


@pytest.fixture
def databases() -> Iterator[Databases]:
    made = Databases()
    yield made
    made.drop_all()


def children(pid: int) -> dict[int, str]:
    """The live processes whose parent is `pid`, with their command lines (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after the command: state, ppid, …
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    """`pid` runs and is no zombie."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_openbao_devstack_started_and_its_command(
    tmp_path: Path, databases: Databases, signum: signal.Signals
) -> None:
    port = free_port()  # not 8210, which the suite's own devstack may hold
    running = tmp_path / "command.pid"
    env = {name: value for name, value in os.environ.items() if name not in ("VAULT_ADDR", "VAULT_TOKEN")}
    env.update(
        DATABASE_URL=databases.create("devstack_signal"),
        DEVSTACK_BAO_TEST_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    log = tmp_path / "devstack.log"
    with log.open("wb") as out:
        devstack = subprocess.Popen(
            [sys.executable, "scripts/devstack.py", "exec", "--", sys.executable, "-c", SLEEPER, str(running)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started: dict[int, str] = {}
    try:
        # The command runs once migrate_schemas is done, OpenBao listening since before.
        up = wait_until(lambda: (running.exists() and running.read_text()) or devstack.poll() is not None, 180)
        assert up, log.read_text()[-4000:]
        assert devstack.poll() is None, log.read_text()[-4000:]
        started = children(devstack.pid)
        bao = [pid for pid, command in started.items() if f"-dev-listen-address=127.0.0.1:{port}" in command]
        command = int(running.read_text())
        assert len(bao) == 1 and command in started and listening(port), (started, log.read_text()[-4000:])

        devstack.send_signal(signum)  # devstack alone, not its process group, as `kill PID` does
        devstack.wait(timeout=60)
        assert wait_until(lambda: not alive(bao[0]) and not alive(command), 5), {pid: alive(pid) for pid in started}
        assert not listening(port)
        assert devstack.returncode == 128 + signum, log.read_text()[-4000:]
        assert f"{signum.name}: stopping what this run started" in log.read_text()
    finally:
        # Whatever of ours a failure left running (only the processes this devstack started, by pid).
        if devstack.poll() is None:
            os.killpg(devstack.pid, signal.SIGKILL)
            devstack.wait()
        for pid in started:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        (ROOT / ".local" / f"openbao-test-token-{port}").unlink(missing_ok=True)
