"""A tools/call is decided once: with a scope-limited bearer token the endpoint's gate decides the call (to answer a
step-up with 403) and the handler reuses that decision, so the engine runs once for an allowed call.

The endpoint runs in-process (`McpEndpoint.handle` with its real session manager and an audit queue of its own in thread
mode), with a real token signed by the tenant's Vault-held key; engine runs are counted on the event loop's
thread through the profile hook (`decisions` in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.pipeline import queue
from mcp_endpoint import bearer
from mcp_endpoint.gate import McpEndpoint
from oauth import issuer, tokens
from tenants.models import Tenant
from tests.support.mcp import MODERN, Committed, commit_in

pytestmark = pytest.mark.django_db


def _token(email: str, scope: str) -> str:
    """An access token for `email` at acme's `demo` endpoint, minted as the token endpoint mints it (committed on
    a connection of its own, so the endpoint's threads see a signing key created for it)."""

    def mint() -> str:
        tenant = Tenant.objects.get(slug="acme")
        with tenant_context(tenant):
            claims = tokens.access_token_claims(
                user=User.objects.get(email=email),
                client_id="decided-once-test",
                scopes=scope.split(),
                audience=[issuer.mcp_resource("demo", tenant)],
            )
            return tokens.mint(claims)

    return commit_in("public", mint)


async def _call(endpoint: McpEndpoint, token: str, name: str, arguments: dict[str, Any]) -> httpx2.Response:
    """One tools/call of the stateless 2026-07-28 protocol, through `McpEndpoint.handle` in this thread's loop."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await endpoint.handle(scope, receive, send, "acme", "demo")

    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "authsec-tests", "version": "1"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    body["params"]["_meta"] = meta  # type: ignore[index]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post("/t/acme/mcp/demo", content=json.dumps(body), headers=headers)


def _run(
    calls: list[tuple[str, str, dict[str, Any]]], decisions: Any, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[httpx2.Response, int]]:
    """Each call's response and the engine runs it took (the first of a token also verifies it: not counted)."""
    endpoint = McpEndpoint()
    monkeypatch.setattr(queue, "current", queue.AuditQueue(mode="thread"))  # this test's own audit queue
    outcomes = []

    async def main() -> None:
        async with queue.current.run(), endpoint.session_manager.run():
            for token, name, arguments in calls:
                await _call(endpoint, token, "view_reports", {})  # fills the endpoint's caches for this token
                before = decisions.count
                with decisions.counting():
                    response = await _call(endpoint, token, name, arguments)
                outcomes.append((response, decisions.count - before))
        await sync_to_async(connections.close_all)()

    asyncio.run(main())
    return outcomes


@pytest.fixture
def fresh_caches(committed: Committed) -> Any:
    bearer._principals.clear()
    yield
    bearer._principals.clear()


def test_a_scope_limited_call_runs_the_engine_once(
    fresh_caches: Any, decisions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice holds read and write; her token carries only read (limited). view_analytics needs read."""
    narrow = _token("alice@acme.test", "openid email read")
    full = _token("alice@acme.test", "openid email read write")
    [(allowed, allowed_runs), (plain, plain_runs), (step_up, step_up_runs)] = _run(
        [
            (narrow, "view_analytics", {}),
            (full, "view_analytics", {}),
            (narrow, "create_resource", {"name": "x"}),
        ],
        decisions,
        monkeypatch,
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["isError"] is False
    assert allowed_runs == 1
    assert plain.status_code == 200 and plain.json()["result"]["isError"] is False
    assert plain_runs == 1
    # The user may, the token may not: 403 insufficient_scope from the gate, the handler never runs.
    assert step_up.status_code == 403 and step_up.json()["error"] == "insufficient_scope"
    assert step_up.json()["scope"] == "email openid read write"
    assert step_up_runs == 2  # the token's decision, then the user's to tell a step-up from a hidden tool
