"""Handshake-era MCP sessions (2025-11-25): the login of ``oauth_start`` binds to the MCP session, the server
advertises and sends ``notifications/tools/list_changed``, and a session belongs to the endpoint that opened it.
Also the step-up answer (403 ``insufficient_scope``) for a token narrower than its user's grants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import anyio
import httpx2
import pytest
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, JSON_RPC, Committed, get_tokens, modern_rpc, url
from tests.support.mcp_login import browser_login

pytestmark = pytest.mark.django_db
FIVE = sorted(LOGIN_TOOLS)
LIST_CHANGED = "notifications/tools/list_changed"


@pytest.fixture(scope="module", autouse=True)
def cleanup(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    yield
    with django_db_blocker.unblock():
        for slug in ("acme", "globex"):
            with schema_context(f"tenant_{slug}"):
                AuthSession.objects.all().delete()
                OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()


class Notes:
    """Notifications the client received, with a way to wait for the next tools/list_changed."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self._changed = anyio.Event()

    async def handler(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if method:
            self.methods.append(method)
        if method == LIST_CHANGED:
            self._changed.set()

    async def wait_changed(self, seconds: float = 10.0) -> None:
        with anyio.fail_after(seconds):
            await self._changed.wait()
        self._changed = anyio.Event()


def _names(result: Any) -> list[str]:
    return sorted(tool.name for tool in result.tools)


def _json(result: Any) -> dict[str, Any]:
    return json.loads(result.content[0].text)


def test_login_binds_to_the_mcp_session_and_notifies_list_changed(
    asgi_server: LiveServer, committed: Committed
) -> None:
    endpoint = url(asgi_server)

    async def main() -> None:
        notes = Notes()
        http = httpx2.AsyncClient(timeout=30)
        async with (
            http,
            Client(
                streamable_http_client(endpoint, http_client=http),
                mode="legacy",
                cache=None,
                message_handler=notes.handler,
            ) as client,
        ):
            assert client.protocol_version == "2025-11-25"
            capabilities = client.session.initialize_result.capabilities
            assert capabilities.tools is not None and capabilities.tools.list_changed is True
            assert _names(await client.list_tools()) == FIVE

            started = _json(await client.call_tool("oauth_start", {}))
            page = await anyio.to_thread.run_sync(
                partial(browser_login, user_code=started["user_code"]),
                asgi_server,
                started["authorization_url"],
                "alice@acme.test",
            )
            assert page.status_code == 200
            status = _json(await client.call_tool("oauth_status", {"session_id": started["session_id"]}))
            assert status["status"] == "authenticated"
            await notes.wait_changed()
            # No credential on the requests: the MCP session itself is now alice's.
            assert _names(await client.list_tools()) == sorted(EXPECTED["alice@acme.test"] | LOGIN_TOOLS)
            hello = await client.call_tool("hello", {})
            assert hello.content[0].text == "Hello, alice@acme.test!"

            logout = _json(await client.call_tool("oauth_logout", {"session_id": started["session_id"]}))
            assert logout["status"] == "logged_out"
            await notes.wait_changed()
            assert _names(await client.list_tools()) == FIVE
            with pytest.raises(MCPError):
                await client.call_tool("hello", {})

    anyio.run(main)


def test_a_new_mcp_session_is_anonymous_and_another_endpoint_cannot_use_it(
    asgi_server: LiveServer, committed: Committed
) -> None:
    endpoint, globex = url(asgi_server), url(asgi_server, "globex")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with httpx2.Client(timeout=30) as http:
        opened = http.post(endpoint, json=initialize, headers=JSON_RPC)
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        headers = {**JSON_RPC, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        done = http.post(endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        assert done.status_code == 202
        listed = http.post(endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
        assert sorted(tool["name"] for tool in listed.json()["result"]["tools"]) == FIVE
        # The same session id at another tenant's endpoint is unknown there.
        foreign = http.post(globex, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers)
        assert foreign.status_code == 404 and foreign.json()["error"]["message"] == "Session not found"
        # A session id nobody issued.
        unknown = {**headers, "mcp-session-id": "0" * 32}
        missing = http.post(endpoint, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=unknown)
        assert missing.status_code == 404


def test_a_narrow_token_lists_what_its_user_may_do_and_gets_403_insufficient_scope_on_call(
    asgi_server: LiveServer, committed: Committed
) -> None:
    """alice holds `write`; a token she consented with `read` only still lists create_resource (her grants
    allow it) but calling it answers 403 with the scope to ask for (MCP step-up authorization)."""
    endpoint = url(asgi_server)
    token = get_tokens(asgi_server, committed, "alice@acme.test", scope="openid email read")["access_token"]

    def rpc(method: str, params: dict[str, Any]) -> httpx2.Response:
        return modern_rpc(endpoint, method, params, {"Authorization": f"Bearer {token}"})

    listed = rpc("tools/list", {})
    assert listed.status_code == 200, listed.text
    assert "create_resource" in {tool["name"] for tool in listed.json()["result"]["tools"]}

    denied = rpc("tools/call", {"name": "create_resource", "arguments": {"name": "x"}})
    assert denied.status_code == 403, denied.text
    challenge = denied.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="email openid read write"' in challenge
    assert f'resource_metadata="{asgi_server.url}/.well-known/oauth-protected-resource/t/acme/mcp/demo"' in challenge
    assert denied.json()["error"] == "insufficient_scope"

    # What the token's scopes cover still works, and a hidden tool stays unknown (no 403 that would reveal it).
    allowed = rpc("tools/call", {"name": "view_analytics", "arguments": {}})
    assert allowed.status_code == 200 and allowed.json()["result"]["isError"] is False
    hidden = rpc("tools/call", {"name": "deploy_production", "arguments": {}})
    assert hidden.json()["error"]["message"] == "Unknown tool: deploy_production", hidden.text
    assert hidden.status_code != 403
