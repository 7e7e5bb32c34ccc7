"""The seed's five login tools against a live uvicorn with the real `mcp` client (stateless transport)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession, state_for
from oauth.models import Client as OAuthClient
from rbac.demo import DEMO_POLICIES
from rbac.models import Application
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, VALID_ARGUMENTS, Committed, commit_in_acme, get_token, url
from tests.support.mcp_login import body, browser_login, mcp, status

pytestmark = pytest.mark.django_db
FIVE = sorted(LOGIN_TOOLS)


@pytest.fixture(scope="module", autouse=True)
def cleanup(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Remove what the live server committed (sessions, the login client, the extra application)."""
    yield
    with django_db_blocker.unblock():
        for slug in ("acme", "globex"):
            with schema_context(f"tenant_{slug}"):
                AuthSession.objects.all().delete()
                OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()
                Application.objects.filter(slug="login-other").delete()


def start(endpoint: str) -> dict[str, Any]:
    started = body(mcp(endpoint, None, "oauth_start"))
    assert started["status"] == "pending" and started["expires_in"] == 600
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", started["user_code"])
    assert started["user_code"] in started["message"]
    return started


def login(server: LiveServer, email: str) -> str:
    started = start(url(server))
    page = browser_login(server, started["authorization_url"], email, user_code=started["user_code"])
    assert page.status_code == 200 and "You can return to your assistant" in page.text, page.text[:2000]
    return started["session_id"]


def test_anonymous_list_is_exactly_the_five_login_tools(asgi_server: LiveServer, committed: Committed) -> None:
    assert (
        mcp(url(asgi_server), None)
        == FIVE
        == [
            "oauth_authenticate",
            "oauth_logout",
            "oauth_start",
            "oauth_status",
            "oauth_user_info",
        ]
    )


def test_oauth_start_returns_an_authorization_url_with_server_held_pkce(
    asgi_server: LiveServer, committed: Committed
) -> None:
    started = start(url(asgi_server))
    parsed = urlparse(started["authorization_url"])
    query = {key: values[0] for key, values in parse_qs(parsed.query).items()}
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == f"{asgi_server.url}/t/acme/oauth/authorize"
    assert query["client_id"] == LOGIN_CLIENT_ID
    assert query["redirect_uri"] == f"{asgi_server.url}/t/acme/mcp-login/callback"
    assert query["code_challenge_method"] == "S256" and "code_verifier" not in query
    assert query["state"] == state_for(started["session_id"]) != started["session_id"]
    assert query["resource"] == url(asgi_server)
    assert len(started["session_id"]) >= 43
    assert status(url(asgi_server), started["session_id"]) == "pending"
    assert mcp(url(asgi_server), started["session_id"]) == FIVE  # pending: still anonymous


def test_seed_flow_login_then_list_logout(asgi_server: LiveServer, committed: Committed) -> None:
    endpoint = url(asgi_server)
    session_id = login(asgi_server, "bob@acme.test")
    assert status(endpoint, session_id) == "authenticated"
    assert mcp(endpoint, session_id) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
    hello = mcp(endpoint, session_id, "hello")
    assert hello.content[0].text == "Hello, bob@acme.test!"
    info = body(mcp(endpoint, None, "oauth_user_info", {"session_id": session_id}))
    assert info["email"] == "bob@acme.test" and info["tenant_id"] == "acme"
    assert {"roles", "groups", "scopes", "resources", "permissions"} <= set(info)

    # The callback link cannot be replayed.
    with schema_context("tenant_acme"):
        state = AuthSession.objects.get(pk=session_id).state
    replay = httpx2.get(f"{asgi_server.url}/t/acme/mcp-login/callback", params={"state": state, "code": "x"})
    assert replay.status_code == 400

    assert body(mcp(endpoint, None, "oauth_logout", {"session_id": session_id}))["status"] == "logged_out"
    assert status(endpoint, session_id) == "logged_out"
    assert mcp(endpoint, session_id) == FIVE
    assert isinstance(mcp(endpoint, session_id, "hello"), MCPError)  # anonymous again: challenged
    with schema_context("tenant_acme"):
        actions = set(
            AuditEvent.objects.filter(action__startswith="mcp.auth_session_").values_list("action", flat=True)
        )
    assert {"mcp.auth_session_started", "mcp.auth_session_authenticated", "mcp.auth_session_logged_out"} <= actions


@pytest.mark.parametrize("email", sorted(EXPECTED))
def test_seed_flow_gives_each_demo_user_exactly_their_tools_and_calls_agree(
    asgi_server: LiveServer, committed: Committed, email: str
) -> None:
    endpoint = url(asgi_server)
    session_id = login(asgi_server, email)
    assert mcp(endpoint, session_id) == sorted(EXPECTED[email] | LOGIN_TOOLS)

    async def call_all() -> dict[str, str]:
        outcomes = {}
        http = httpx2.AsyncClient(headers={"X-AuthSec-Session": session_id}, timeout=30)
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            for tool in sorted(DEMO_POLICIES):
                try:
                    result = await client.call_tool(tool, VALID_ARGUMENTS.get(tool, {}))
                    assert tool == "list_my_repos" or not result.is_error, (tool, result)
                    outcomes[tool] = "called"
                except MCPError as exc:
                    assert exc.error.message == f"Unknown tool: {tool}", (tool, exc)
                    outcomes[tool] = "unknown"
        return outcomes

    outcomes = anyio.run(call_all)
    assert {tool for tool, outcome in outcomes.items() if outcome == "called"} == EXPECTED[email]


def test_unknown_expired_and_foreign_sessions_are_anonymous(asgi_server: LiveServer, committed: Committed) -> None:
    endpoint = url(asgi_server)
    assert status(endpoint, "no-such-session") == "not_found"
    assert mcp(endpoint, "no-such-session") == FIVE

    session_id = login(asgi_server, "dave@acme.test")
    assert mcp(endpoint, session_id) == sorted(EXPECTED["dave@acme.test"] | LOGIN_TOOLS)

    # Another tenant's endpoint: the session does not exist there.
    globex = url(asgi_server, "globex")
    assert mcp(globex, session_id) == FIVE
    assert status(globex, session_id) == "not_found"

    # Another application of the same tenant.
    commit_in_acme(lambda: Application.objects.create(slug="login-other", name="Other"))
    other = url(asgi_server, app="login-other")
    assert mcp(other, session_id) == FIVE
    assert status(other, session_id) == "not_found"

    # Past its TTL.
    commit_in_acme(
        lambda: AuthSession.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    )
    assert mcp(endpoint, session_id) == FIVE
    assert status(endpoint, session_id) == "expired"


def test_oauth_authenticate_binds_a_bearer_token(asgi_server: LiveServer, committed: Committed) -> None:
    endpoint = url(asgi_server)
    session_id = start(endpoint)["session_id"]
    bad = mcp(endpoint, None, "oauth_authenticate", {"session_id": session_id, "jwt_token": "not-a-jwt"})
    assert bad.is_error and "rejected" in bad.content[0].text
    assert status(endpoint, session_id) == "pending"
    # A token of another endpoint (globex) is refused like a bearer token would be.
    foreign = get_token(asgi_server, committed, "erin@globex.test", tenant="globex")
    refused = mcp(endpoint, None, "oauth_authenticate", {"session_id": session_id, "jwt_token": foreign})
    assert refused.is_error
    token = get_token(asgi_server, committed, "carol@acme.test")
    bound = body(mcp(endpoint, None, "oauth_authenticate", {"session_id": session_id, "jwt_token": token}))
    assert bound == {"status": "authenticated", "email": "carol@acme.test"}
    assert mcp(endpoint, session_id) == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)


def test_revoke_in_the_dashboard_logs_the_session_out(asgi_server: LiveServer, committed: Committed) -> None:
    """The Tokens & sessions page's revoke is `revoke_auth_sessions` (tests/mcp_endpoint/test_admin_sessions.py): its
    MCP client is down to the login tools on its next request."""
    from accounts.models import User
    from mcp_endpoint.services import revoke_auth_sessions

    endpoint = url(asgi_server)
    session_id = start(endpoint)["session_id"]
    token = get_token(asgi_server, committed, "bob@acme.test")
    body(mcp(endpoint, None, "oauth_authenticate", {"session_id": session_id, "jwt_token": token}))

    def revoke() -> None:
        session = AuthSession.objects.select_related("application").get(pk=session_id)
        revoke_auth_sessions([session], actor=User.objects.get(email="alice@acme.test"))

    commit_in_acme(revoke)
    assert status(endpoint, session_id) == "logged_out"
    assert mcp(endpoint, session_id) == FIVE
    with schema_context("tenant_acme"):
        assert AuditEvent.objects.filter(action="mcp.auth_session_revoked").exists()
