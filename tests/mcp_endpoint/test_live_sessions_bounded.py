"""The endpoint's record of live MCP sessions (`mcp_endpoint.notify.LiveSessions`) keeps no ended session.

Each record holds a request's `ServerSession` (to push tools/list_changed later), and with it that request's
context: kept for every session ever opened, they were what made the web process grow (docs/benchmarks.md,
"Memory"). A session its client DELETEs is forgotten at once; one left idle is swept after the session manager's
idle timeout. The endpoint runs in-process with its real session manager and audit queue (thread mode) and a
real token signed by the tenant's Vault-held key.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.pipeline import queue
from mcp_endpoint import notify
from mcp_endpoint.gate import McpEndpoint
from oauth import issuer, tokens
from tenants.models import Tenant
from tests.support.mcp import Committed, commit_in

pytestmark = pytest.mark.django_db
PROTOCOL = "2025-11-25"
SESSIONS = 40


def _token() -> str:
    def mint() -> str:
        tenant = Tenant.objects.get(slug="acme")
        with tenant_context(tenant):
            claims = tokens.access_token_claims(
                user=User.objects.get(email="alice@acme.test"),
                client_id="live-sessions-test",
                scopes=["openid", "read"],
                audience=[issuer.mcp_resource("demo", tenant)],
            )
            return tokens.mint(claims)

    return commit_in("public", mint)


async def _session(client: httpx2.AsyncClient, token: str) -> str:
    """initialize, notifications/initialized and a tools/list (which attaches the session for notifications)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = await client.post("/t/acme/mcp/demo", json=init, headers=headers)
    assert response.status_code == 200, response.text
    headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await client.post("/t/acme/mcp/demo", json=note, headers=headers)).status_code == 202
    listed = await client.post(
        "/t/acme/mcp/demo", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
    )
    assert listed.status_code == 200 and "calculator" in listed.text, listed.text
    return headers["Mcp-Session-Id"]


def _run(monkeypatch: pytest.MonkeyPatch, body: Any) -> Any:
    endpoint = McpEndpoint()
    monkeypatch.setattr(queue, "current", queue.AuditQueue(mode="thread"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await endpoint.handle(scope, receive, send, "acme", "demo")

    async def main() -> Any:
        async with queue.current.run(), endpoint.session_manager.run():
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                result = await body(endpoint, client)
        await sync_to_async(connections.close_all)()
        return result

    return asyncio.run(main())


def test_sessions_their_clients_delete_are_forgotten(committed: Committed, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token()

    async def body(endpoint: McpEndpoint, client: httpx2.AsyncClient) -> tuple[int, int]:
        ids = [await _session(client, token) for _ in range(SESSIONS)]
        opened = len(endpoint.live)
        for session_id in ids:
            headers = {
                "Mcp-Session-Id": session_id,
                "Authorization": f"Bearer {token}",
                "MCP-Protocol-Version": PROTOCOL,
            }
            response = await client.delete("/t/acme/mcp/demo", headers=headers)
            assert response.status_code == 200, response.text
        return opened, len(endpoint.live)

    opened, left = _run(monkeypatch, body)
    assert (opened, left) == (SESSIONS, 0)


def test_sessions_idle_past_the_timeout_are_swept(committed: Committed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep runs when a session opens, at most every SWEEP_EVERY seconds: here every time."""
    monkeypatch.setattr(notify, "SWEEP_EVERY", 0.0)
    token = _token()

    async def body(endpoint: McpEndpoint, client: httpx2.AsyncClient) -> tuple[int, int]:
        endpoint.live._idle = 3600.0  # noqa: SLF001 - first none is idle long enough
        for _ in range(SESSIONS // 2):
            await _session(client, token)
        kept = len(endpoint.live)
        endpoint.live._idle = 0.05  # noqa: SLF001 - now every one of them is
        await asyncio.sleep(0.1)
        await _session(client, token)
        return kept, len(endpoint.live)

    kept, left = _run(monkeypatch, body)
    assert (kept, left) == (SESSIONS // 2, 1)


def test_the_record_never_passes_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "MAX_SESSIONS", 100)
    live = notify.LiveSessions(idle_seconds=3600.0)
    for index in range(1_000):
        live.opened(f"session-{index}", "acme", "demo")
        assert len(live) <= 100
    assert len(live._by_digest) == 100  # noqa: SLF001
    # The newest are kept (a session opened at another endpoint still answers 404 there); the longest idle went.
    assert not live.belongs("session-999", "acme", "other")
    assert live.belongs("session-0", "acme", "other")  # forgotten: the session manager answers for it
