"""Standard MCP authorization end to end: the `mcp` client's own OAuth provider discovers our AS from the 401
(RFC 9728 metadata → RFC 8414), registers itself (DCR), runs the code flow with PKCE and `resource`, and a
scripted user logs in and consents on our pages. No token is made by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import pytest
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.exceptions import MCPError

from mcp_endpoint.login import LOGIN_TOOLS
from oauth.models import Client as OAuthClient
from oauth.models import ProviderSettings
from rbac.models import Application
from tests.support.audit import wait_for_event
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, VALID_ARGUMENTS, Committed, commit_in_acme, hidden_fields, url
from tests.support.oauth import PASSWORD

pytestmark = pytest.mark.django_db
REDIRECT = "http://127.0.0.1:9/mcp-client-callback"  # never served: the scripted user reads the Location header
CLIENT_NAME = "Standard MCP client (tests)"


@pytest.fixture(scope="module", autouse=True)
def open_registration(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """acme accepts dynamic registration at once for this module; registered clients are removed after."""
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        before = ProviderSettings.current().dynamic_registration
        ProviderSettings.objects.filter(pk=1).update(dynamic_registration=ProviderSettings.Registration.OPEN)
    yield
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        ProviderSettings.objects.filter(pk=1).update(dynamic_registration=before)
        OAuthClient.objects.filter(name=CLIENT_NAME).delete()


def set_auth_mode(mode: str) -> None:
    app = Application.objects.get(slug="demo")
    app.auth_mode = mode
    app.save()  # signals: every endpoint process reloads the application's settings


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def scripted_user(server: LiveServer, authorization_url: str, email: str) -> str:
    """A person at the browser: our login form, then the consent page; returns the redirect Location."""
    base = server.url
    with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as http:
        response = http.get(authorization_url)
        assert response.status_code == 302 and "/accounts/login/" in response.headers["location"], response.text
        login_url = response.headers["location"]
        page = http.get(login_url)
        form = {**hidden_fields(page.text), "username": email, "password": PASSWORD}
        login = http.post(login_url, data=form, headers={"Referer": base + login_url})
        assert login.status_code == 302, login.text[:2000]
        response = http.get(authorization_url)
        assert response.status_code == 200 and CLIENT_NAME in response.text, response.text[:2000]
        form = {**hidden_fields(response.text), "allow": "Authorize"}
        response = http.post(authorization_url, data=form, headers={"Referer": authorization_url})
        assert response.status_code == 302, response.text[:2000]
        return response.headers["location"]


def provider_for(server: LiveServer, endpoint: str, email: str, seen: dict[str, Any]) -> OAuthClientProvider:
    async def redirect_handler(authorization_url: str) -> None:
        seen["authorization_url"] = authorization_url
        seen["location"] = await anyio.to_thread.run_sync(scripted_user, server, authorization_url, email)

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlparse(seen["location"]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0], iss=query["iss"][0])

    metadata = OAuthClientMetadata(
        client_name=CLIENT_NAME,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server_url=endpoint,
        client_metadata=metadata,
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


def run_standard_client(server: LiveServer, email: str) -> dict[str, Any]:
    """Connect anonymously, call a protected tool (→ 401 → OAuth), then list and call every demo tool."""
    endpoint = url(server)
    seen: dict[str, Any] = {}

    async def main() -> None:
        http = httpx2.AsyncClient(auth=provider_for(server, endpoint, email, seen), timeout=60)
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            hello = await client.call_tool("hello", {})
            seen["hello"] = hello.content[0].text
            seen["listed"] = sorted(tool.name for tool in (await client.list_tools()).tools)
            outcomes = {}
            for tool in sorted(EXPECTED["alice@acme.test"] | EXPECTED["carol@acme.test"] | {"sensitive_operations"}):
                try:
                    result = await client.call_tool(tool, VALID_ARGUMENTS.get(tool, {}))
                    outcomes[tool] = "called"
                    assert tool == "list_my_repos" or not result.is_error, (tool, result)
                except MCPError as exc:
                    assert exc.error.message == f"Unknown tool: {tool}", (tool, exc)
                    outcomes[tool] = "unknown"
            seen["outcomes"] = outcomes

    anyio.run(main)
    return seen


@pytest.mark.parametrize("email", sorted(EXPECTED))
def test_the_mcp_clients_own_oauth_flow_gives_each_user_exactly_their_tools(
    asgi_server: LiveServer, committed: Committed, email: str
) -> None:
    seen = run_standard_client(asgi_server, email)
    authorize = urlparse(seen["authorization_url"])
    params = {key: values[0] for key, values in parse_qs(authorize.query).items()}
    assert authorize.path == "/t/acme/oauth/authorize"
    assert params["code_challenge_method"] == "S256" and params["resource"] == url(asgi_server)
    assert seen["hello"] == f"Hello, {email}!"
    assert seen["listed"] == sorted(EXPECTED[email] | LOGIN_TOOLS)
    # Calling every demo tool agrees with the list: listed tools run, the others are unknown.
    called = {tool for tool, outcome in seen["outcomes"].items() if outcome == "called"}
    assert called == EXPECTED[email] & set(seen["outcomes"])
    with schema_context("tenant_acme"):
        registered = OAuthClient.objects.filter(name=CLIENT_NAME).order_by("-pk").first()
        assert registered is not None and registered.client_type == OAuthClient.CLIENT_PUBLIC
    # Issuance events are handed to the server's audit pipeline, which writes them off the request path.
    wait_for_event(action="oauth.token_issued", data__client_id=registered.client_id)


def test_bearer_only_application_challenges_at_connect_and_the_client_logs_in(
    asgi_server: LiveServer, committed: Committed
) -> None:
    commit_in_acme(lambda: set_auth_mode(Application.AuthMode.BEARER))
    try:
        challenge = httpx2.post(url(asgi_server), json={}, headers={"Accept": "application/json, text/event-stream"})
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"].startswith('Bearer resource_metadata="')
        seen = run_standard_client(asgi_server, "bob@acme.test")
        assert seen["listed"] == sorted(EXPECTED["bob@acme.test"])  # no login tools in bearer mode
    finally:
        commit_in_acme(lambda: set_auth_mode(Application.AuthMode.BOTH))
