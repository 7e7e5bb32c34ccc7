"""The endpoint served by two uvicorn worker processes: bearer tokens and RBAC changes work on both."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support.live import ROOT, LiveServer, free_port, live_server_env
from tests.support.mcp import Committed, commit_in, get_token, modern_rpc, set_admin_role

pytestmark = pytest.mark.django_db
# uvicorn's access log with the worker's pid, to show that both workers answered.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"access": {"format": "pid=%(process)d %(message)s"}},
    "handlers": {"access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"}},
    "loggers": {"uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}},
}


@pytest.fixture(scope="module")
def two_workers(django_db_setup, tmp_path_factory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = tmp_path_factory.mktemp("uvicorn2")
    log, log_config = folder / "uvicorn.log", folder / "log.json"
    log_config.write_text(json.dumps(LOG_CONFIG))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "authsec_site.asgi:application", "--port", str(port)]
            + ["--lifespan", "on", "--workers", "2", "--log-config", str(log_config)],
            cwd=ROOT,
            env=live_server_env(AUTHSEC_PUBLIC_URL=url, DEBUG="0"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"uvicorn did not start:\n{log.read_text()}")
    time.sleep(2)  # both workers up
    yield LiveServer(proc, url, log)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _tool_names(server: LiveServer, token: str) -> set[tuple[str, ...]]:
    """The distinct answers of 20 tools/list requests (stateless protocol), each on a fresh connection."""
    answers = set()
    for _ in range(20):
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        response = modern_rpc(f"{server.url}/t/globex/mcp/demo", "tools/list", {}, headers)
        assert response.status_code == 200, response.text
        answers.add(tuple(sorted(tool["name"] for tool in response.json()["result"]["tools"])))
    return answers


def _answering_pids(server: LiveServer) -> set[str]:
    lines = server.log.read_text().splitlines()
    return {line.split()[0] for line in lines if line.startswith("pid=") and "/t/globex/mcp/demo" in line}


def test_two_workers_agree_on_tokens_and_rbac_changes(two_workers: LiveServer, committed: Committed) -> None:
    # globex/erin rather than acme/alice: see test_endpoint's role-revocation test for why.
    token = get_token(two_workers, committed, "erin@globex.test", tenant="globex")
    answers = _tool_names(two_workers, token)
    assert len(answers) == 1 and "admin_panel" in next(iter(answers))
    commit_in("tenant_globex", lambda: set_admin_role("erin@globex.test", grant=False))
    try:
        answers = _tool_names(two_workers, token)
        assert len(answers) == 1 and "admin_panel" not in next(iter(answers))
    finally:
        commit_in("tenant_globex", lambda: set_admin_role("erin@globex.test", grant=True))
    assert len(_answering_pids(two_workers)) == 2, two_workers.log.read_text()[-3000:]
