"""A web node of our own on backing services we can break (tests/support/faults.py), and the calls to count."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from audit.verify import verify_chain
from rbac.demo import DEMO
from tests.support.faults import TcpGate, ThrowawayRedis, free_port, port_answers, wait_until
from tests.support.live import ROOT, live_server_env, uvicorn_flags
from tests.support.mcp import JSON_RPC, MODERN, Committed, get_tokens


@dataclass
class Node:
    """One web node (uvicorn + its audit process, one process group) that can be SIGKILLed and started again."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "authsec_site.asgi:application", "--host", "127.0.0.1", "--port",
                 str(self.port), *uvicorn_flags()],
                cwd=ROOT, env={**self.env, "AUTHSEC_PUBLIC_URL": self.url}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(lambda: self.proc.poll() is None and port_answers(self.port), 60, "the web node")  # type: ignore[union-attr]
        except TimeoutError:
            self.kill()
            pytest.fail(f"the web node did not start:\n{self.log.read_text()[-4000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL the node's whole process group: the web process and its audit process, at once."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


@dataclass
class Faults:
    """The module's node and what it stands on: its own Redis, gates in front of the suite's Postgres and OpenBao."""

    node: Node
    redis: ThrowawayRedis
    postgres: TcpGate
    vault: TcpGate
    committed: Committed
    agent: str  # the User-Agent of this module's calls: how their audit events are found

    def tokens(self) -> dict[str, Any]:
        scope = " ".join(["openid", "email", "offline_access", *DEMO["acme"]["scopes"]])
        return get_tokens(self.node, self.committed, "alice@acme.test", scope=scope)  # type: ignore[arg-type]

    def mcp(
        self,
        method: str,
        params: dict[str, Any],
        token: str | None,
        tenant: str = "acme",
        agent: str = "",
        app: str = "demo",
    ) -> httpx2.Response:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "authsec-reliability", "version": "1"},
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
        headers = {**JSON_RPC, "MCP-Protocol-Version": MODERN, "Mcp-Method": method, "User-Agent": agent or self.agent}
        if "name" in params:
            headers["Mcp-Name"] = params["name"]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx2.post(f"{self.node.url}/t/{tenant}/mcp/{app}", json=body, headers=headers, timeout=30)

    def refresh(self, refresh_token: str) -> httpx2.Response:
        return httpx2.post(
            f"{self.node.url}/t/acme/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                  "client_id": self.committed.client_ids["acme"]},
            timeout=30,
        )  # fmt: skip


@pytest.fixture(scope="module")
def faults(committed: Committed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    db = settings.DATABASES["default"]
    vault = urlsplit(settings.VAULT_ADDR)
    redis = ThrowawayRedis().start()
    postgres = TcpGate(db["HOST"], int(db["PORT"])).open()
    gate = TcpGate(vault.hostname or "127.0.0.1", vault.port or 8200).open()
    home = tmp_path_factory.mktemp("node")
    env = live_server_env(
        DEBUG="0",
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{postgres.port}/{db['NAME']}",
        REDIS_URL=redis.url,
        VAULT_ADDR=f"http://127.0.0.1:{gate.port}",
        AUDIT_SPOOL_DIR=str(home / "spool"),
        OUTBOUND_ALLOW_LOOPBACK="1",
    )
    node = Node(env, home / "uvicorn.log").start()
    try:
        yield Faults(node, redis, postgres, gate, committed, f"reliability-{uuid.uuid4().hex[:12]}")
    finally:
        node.stop()
        redis.stop()
        postgres.close()
        gate.close()


def rpc_outcome(response: httpx2.Response) -> str:
    """What a client made of an MCP answer: "ok", "tool error", or the JSON-RPC error's code and message. Fails
    the test on anything that is not a protocol answer (an HTML page, a stack trace, a body that is not JSON)."""
    assert_protocol_answer(response)
    body = _json_of(response)
    if "error" in body:
        return f"HTTP {response.status_code} JSON-RPC {body['error']['code']} {body['error']['message']}"
    return "tool error" if body["result"].get("isError") else "ok"


def assert_protocol_answer(response: httpx2.Response) -> None:
    text = response.text
    assert "Traceback" not in text and "<html" not in text.lower(), text[:2000]
    assert response.status_code != 500, text[:2000]
    _json_of(response)


def _json_of(response: httpx2.Response) -> dict[str, Any]:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = "".join(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text)


def audit_events(agent: str) -> list[AuditEvent]:
    """The tool-call events of calls made with User-Agent `agent`, committed so far."""
    with schema_context("tenant_acme"):
        return list(AuditEvent.objects.filter(user_agent=agent, action="mcp.tool_call").order_by("seq"))


def chain_ok() -> bool:
    """`verify_audit`'s check of acme's hash chain."""
    with schema_context("tenant_acme"):
        return verify_chain().broken is None
