"""Live-server helpers: real tokens over HTTP (login + consent + code exchange), raw MCP calls, committing writes."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import anyio
import httpx2
from django.db import connections
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from accounts.models import User
from rbac.demo import DEMO
from rbac.models import Role
from tests.support.live import LiveServer
from tests.support.oauth import PASSWORD, pkce

REDIRECT = "http://127.0.0.1:9/callback"  # never followed: the code is read from the Location header
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@dataclass
class Committed:
    """What the `committed` fixture committed."""

    client_ids: dict[str, str]  # tenant -> public OAuth client id


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def get_token(server: LiveServer, committed: Committed, email: str, tenant: str = "acme", app: str = "demo") -> str:
    """A real access token for `email`, audience = the MCP endpoint, through the tenant's own login and AS."""
    return get_tokens(server, committed, email, tenant, app)["access_token"]


def get_tokens(
    server: LiveServer,
    committed: Committed,
    email: str,
    tenant: str = "acme",
    app: str = "demo",
    scope: str = "",
    resource: str | None = "",
) -> dict[str, Any]:
    """The token response (access, refresh when `scope` asks for offline_access, id) of a full code flow.

    The audience is the MCP endpoint of `app`, or `resource` when given (None: no resource, the issuer)."""
    base = server.url
    verifier, challenge = pkce()
    with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as http:
        page = http.get(f"/t/{tenant}/accounts/login/")
        form = {**hidden_fields(page.text), "username": email, "password": PASSWORD}
        login = http.post(f"/t/{tenant}/accounts/login/", data=form, headers={"Referer": f"{base}/t/{tenant}/"})
        assert login.status_code == 302, login.text[:2000]
        params = {
            "response_type": "code",
            "client_id": committed.client_ids[tenant],
            "redirect_uri": REDIRECT,
            # By default every RBAC scope of the tenant, as standard MCP clients ask for PRM's scopes_supported.
            "scope": scope or " ".join(["openid", "email", *DEMO[tenant]["scopes"]]),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "mcp-test",
            "resource": resource or f"{base}/t/{tenant}/mcp/{app}",
        }
        if resource is None:
            del params["resource"]
        authorize_url = f"/t/{tenant}/oauth/authorize?{urlencode(params)}"
        response = http.get(authorize_url)
        if response.status_code == 200:
            form = {**hidden_fields(response.text), "allow": "Authorize"}
            response = http.post(authorize_url, data=form, headers={"Referer": base + authorize_url})
        assert response.status_code == 302, response.text[:2000]
        code = parse_qs(urlparse(response.headers["location"]).query)["code"][0]
        token = http.post(
            f"/t/{tenant}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": committed.client_ids[tenant],
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        return token.json()


def mcp_list(url: str, token: str | None = None) -> list[str]:
    async def main() -> list[str]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else None)
        async with http, Client(streamable_http_client(url, http_client=http), cache=None) as client:
            return sorted(tool.name for tool in (await client.list_tools()).tools)

    return anyio.run(main)


MODERN = "2026-07-28"


def modern_rpc(endpoint: str, method: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """One raw JSON-RPC request of the stateless 2026-07-28 protocol (envelope `_meta`, routing headers)."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "authsec-tests", "version": "1"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    routing = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        **({"Mcp-Name": params["name"]} if "name" in params else {}),
    }
    return httpx2.post(endpoint, json=body, headers={**routing, **(headers or {})}, timeout=30)


def commit_in(schema: str, write: Callable[[], Any]) -> Any:
    """Run `write` in `schema` on a connection of its own, so it commits (and its on-commit hooks run) although
    the calling test runs inside a transaction: the live server only sees committed data."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            with schema_context(schema):
                outcome["value"] = write()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def commit_in_acme(write: Callable[[], Any]) -> Any:
    return commit_in("tenant_acme", write)


def set_admin_role(email: str, grant: bool) -> None:
    """Grant or revoke the user's direct `admin` role through the RBAC services (audited)."""
    from rbac import services

    user, admin = User.objects.get(email=email), Role.objects.get(name="admin")
    (services.grant_role if grant else services.revoke_role)(actor="tests", role=admin, user=user)


JSON_RPC = {"Accept": "application/json, text/event-stream"}


# The seed's semantics over the RBAC issue's table, written out.
EXPECTED = {
    "alice@acme.test": {
        "admin_dashboard",
        "admin_panel",
        "calculator",
        "create_resource",
        "engineering_tools",
        "hello",
        "list_my_repos",
        "view_analytics",
        "view_reports",
    },
    "bob@acme.test": {"calculator", "hello", "list_my_repos", "view_analytics", "view_reports"},
    "carol@acme.test": {"calculator", "create_resource", "deploy_production", "engineering_tools", "hello"},
    "dave@acme.test": {"calculator", "hello", "sensitive_operations"},
}


VALID_ARGUMENTS = {"create_resource": {"name": "x"}, "calculator": {"operation": "add", "a": 1, "b": 2}}


def url(server: LiveServer, tenant: str = "acme", app: str = "demo") -> str:
    return f"{server.url}/t/{tenant}/mcp/{app}"


def call(endpoint: str, token: str | None, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """tools/call with the real client; returns the CallToolResult or the MCPError raised."""

    async def main() -> Any:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else None)
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            try:
                return await client.call_tool(name, arguments or {})
            except MCPError as exc:
                return exc

    return anyio.run(main)


def text(result: Any) -> str:
    return result.content[0].text
