"""The MCP login tools driven from outside: the real `mcp` client with a session header, a browser over httpx."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.live import LiveServer
from tests.support.mcp import hidden_fields
from tests.support.oauth import PASSWORD


def mcp(endpoint: str, session_id: str | None, name: str | None = None, arguments: dict[str, Any] | None = None) -> Any:
    """tools/list (name None: sorted names) or tools/call with the real client and the session header."""

    async def main() -> Any:
        http = httpx2.AsyncClient(headers={"X-AuthSec-Session": session_id} if session_id else None)
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            if name is None:
                return sorted(tool.name for tool in (await client.list_tools()).tools)
            try:
                return await client.call_tool(name, arguments or {})
            except MCPError as exc:
                return exc

    return anyio.run(main)


def body(result: Any) -> dict[str, Any]:
    assert not isinstance(result, MCPError), result
    return json.loads(result.content[0].text)


def status(endpoint: str, session_id: str) -> str:
    return body(mcp(endpoint, None, "oauth_status", {"session_id": session_id}))["status"]


def sign_in(http: httpx2.Client, server: LiveServer, email: str, tenant: str = "acme") -> None:
    """Form login at the tenant with `http` (its cookies are the browser's)."""
    page = http.get(f"/t/{tenant}/accounts/login/")
    form = {**hidden_fields(page.text), "username": email, "password": PASSWORD}
    login = http.post(f"/t/{tenant}/accounts/login/", data=form, headers={"Referer": f"{server.url}/t/{tenant}/"})
    assert login.status_code == 302, login.text[:2000]


def authorize(http: httpx2.Client, server: LiveServer, authorization_url: str, tenant: str = "acme") -> str:
    """Open the authorization URL signed in (consenting when asked): the callback URL it redirects to."""
    response = http.get(authorization_url)
    if response.status_code == 200:
        form = {**hidden_fields(response.text), "allow": "Authorize"}
        response = http.post(authorization_url, data=form, headers={"Referer": authorization_url})
    assert response.status_code == 302, response.text[:2000]
    location = response.headers["location"]
    assert location.startswith(f"{server.url}/t/{tenant}/mcp-login/callback?"), location
    return location


def confirmation_page(http: httpx2.Client, server: LiveServer, callback: str, tenant: str = "acme") -> httpx2.Response:
    """Follow the callback: it never binds, it redirects to the confirmation page (returned)."""
    response = http.get(callback)
    assert response.status_code == 302, response.text[:2000]
    assert response.headers["location"].startswith(f"{server.url}/t/{tenant}/mcp-login/confirm?state="), response
    page = http.get(response.headers["location"])
    assert page.status_code == 200 and 'id="confirm-form"' in page.text, page.text[:2000]
    return page


def submit(
    http: httpx2.Client, page: httpx2.Response, user_code: str, action: str = "confirm", tenant: str = "acme"
) -> httpx2.Response:
    """POST the confirmation form of `page` (with its CSRF token) as the browser would."""
    form = {**hidden_fields(page.text), "user_code": user_code, "action": action}
    confirm_url = str(page.url)
    return http.post(f"/t/{tenant}/mcp-login/confirm", data=form, headers={"Referer": confirm_url})


def browser_login(
    server: LiveServer, authorization_url: str, email: str, tenant: str = "acme", *, user_code: str
) -> httpx2.Response:
    """A user opening the authorization URL: form login, consent, our callback, the confirmation page where they
    type `user_code` and confirm. Returns the final page."""
    with httpx2.Client(base_url=server.url, follow_redirects=False, timeout=30) as http:
        sign_in(http, server, email, tenant)
        page = confirmation_page(http, server, authorize(http, server, authorization_url, tenant), tenant)
        return submit(http, page, user_code, tenant=tenant)


ATTACKER_AGENT = "attacker-agent/6.6 <script>alert(1)</script>"  # shown escaped, never as markup


def start_as(endpoint: str, user_agent: str = ATTACKER_AGENT) -> dict[str, Any]:
    """`oauth_start` with the real `mcp` client, anonymously, from a client with this User-Agent."""

    async def main() -> dict[str, Any]:
        http = httpx2.AsyncClient(headers={"User-Agent": user_agent})
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            return json.loads((await client.call_tool("oauth_start", {})).content[0].text)

    return anyio.run(main)
