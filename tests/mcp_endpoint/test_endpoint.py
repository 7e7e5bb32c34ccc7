"""The hosted endpoint against a live uvicorn with the real `mcp` client and real tokens from our AS."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import httpx2
import pytest
from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context
from mcp.shared.exceptions import MCPError

from accounts.models import User
from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_TOOLS
from oauth.models import Client as OAuthClient
from rbac.demo import DEMO_POLICIES
from rbac.engine import Requirement, filter_tools
from rbac.grants import load_grants
from rbac.models import Application
from tests.support.live import LiveServer
from tests.support.mcp import (
    EXPECTED,
    JSON_RPC,
    VALID_ARGUMENTS,
    Committed,
    call,
    commit_in,
    commit_in_acme,
    get_token,
    get_tokens,
    mcp_list,
    set_admin_role,
    text,
    url,
)

pytestmark = pytest.mark.django_db


def engine_view(email: str) -> set[str]:
    with schema_context("tenant_acme"):
        grants = load_grants(User.objects.get(email=email).pk)
    policies = {tool: Requirement.of(**spec) for tool, spec in DEMO_POLICIES.items()}
    return set(filter_tools(grants, policies, list(DEMO_POLICIES)))


def test_anonymous_sees_no_protected_tool(asgi_server: LiveServer, committed: Committed) -> None:
    assert mcp_list(url(asgi_server)) == sorted(LOGIN_TOOLS)


@pytest.mark.parametrize("email", sorted(EXPECTED))
def test_each_demo_user_sees_exactly_what_the_engine_allows(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str], email: str
) -> None:
    assert engine_view(email) == EXPECTED[email]
    assert mcp_list(url(asgi_server), tokens(email)) == sorted(EXPECTED[email] | LOGIN_TOOLS)


@pytest.mark.parametrize("email", ["bob@acme.test", "dave@acme.test"])
def test_calling_every_demo_tool_agrees_with_the_list(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str], email: str
) -> None:
    unknown = call(url(asgi_server), tokens(email), "no_such_tool")
    assert isinstance(unknown, MCPError)
    for tool in DEMO_POLICIES:
        result = call(url(asgi_server), tokens(email), tool, VALID_ARGUMENTS.get(tool, {}))
        if tool in EXPECTED[email]:
            assert not isinstance(result, MCPError), (tool, result)
        else:
            # A hidden tool answers exactly like a tool that does not exist.
            assert isinstance(result, MCPError), tool
            assert (result.code, result.message) == (unknown.code, unknown.message.replace("no_such_tool", tool))


def test_hello_greets_the_caller_with_injected_user_info(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    result = call(url(asgi_server), tokens("bob@acme.test"), "hello", {"_user_info": {"email": "spoof@evil.test"}})
    assert text(result) == "Hello, bob@acme.test!"


def test_calculator_and_its_clean_errors(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    token = tokens("bob@acme.test")
    assert text(call(url(asgi_server), token, "calculator", {"operation": "multiply", "a": 6, "b": 7})) == "42"
    divided = call(url(asgi_server), token, "calculator", {"operation": "divide", "a": 1, "b": 0})
    assert divided.is_error and text(divided) == "Division by zero is not allowed."
    invalid = call(url(asgi_server), token, "calculator", {"operation": "pow", "a": 1, "b": 2})
    assert isinstance(invalid, MCPError) and invalid.code == -32602
    assert invalid.message.startswith("Invalid arguments for tool calculator: operation:")


def test_create_resource_validates_its_input(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    token = tokens("alice@acme.test")
    assert text(call(url(asgi_server), token, "create_resource", {"name": "Alpha"})) == (
        "Resource 'Alpha' created successfully!"
    )
    missing = call(url(asgi_server), token, "create_resource", {})
    assert isinstance(missing, MCPError)
    assert missing.message == "Invalid arguments for tool create_resource: (arguments): 'name' is a required property"


def test_list_my_repos_says_the_service_is_not_configured(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    result = call(url(asgi_server), tokens("bob@acme.test"), "list_my_repos")
    assert result.is_error and "not configured" in text(result)


def test_acme_token_at_a_globex_endpoint_is_401(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    response = httpx2.post(
        url(asgi_server, "globex"),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {tokens('alice@acme.test')}"},
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{asgi_server.url}/.well-known/oauth-protected-resource/t/globex/mcp/demo"' in challenge
    assert 'error="invalid_token"' in challenge


def test_unknown_application_is_404_even_with_a_token(asgi_server: LiveServer, committed: Committed) -> None:
    other = get_token(asgi_server, committed, "bob@acme.test", app="demo")
    response = httpx2.post(
        url(asgi_server, app="nosuchapp"),
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={**JSON_RPC, "Authorization": f"Bearer {other}"},
    )
    assert response.status_code == 404  # unknown application first


def test_garbage_token_is_401(asgi_server: LiveServer, committed: Committed) -> None:
    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={**JSON_RPC, "Authorization": "Bearer not-a-jwt"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_anonymous_tools_call_gets_the_401_challenge_in_both_mode(
    asgi_server: LiveServer, committed: Committed
) -> None:
    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hello", "arguments": {}}},
        headers={**JSON_RPC, "MCP-Protocol-Version": "2025-06-18"},
    )
    assert response.status_code == 401
    assert "resource_metadata=" in response.headers["www-authenticate"]


def test_bearer_mode_requires_a_token(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    def set_mode(mode: str) -> None:
        application = Application.objects.get(slug="demo")
        application.auth_mode = mode
        application.save()  # the signal invalidates every process's cached settings after commit

    commit_in_acme(lambda: set_mode(Application.AuthMode.BEARER))
    try:
        response = httpx2.post(url(asgi_server), json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=JSON_RPC)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == (
            f'Bearer resource_metadata="{asgi_server.url}/.well-known/oauth-protected-resource/t/acme/mcp/demo"'
        )
        assert mcp_list(url(asgi_server), tokens("dave@acme.test")) == sorted(EXPECTED["dave@acme.test"])
    finally:
        commit_in_acme(lambda: set_mode(Application.AuthMode.BOTH))


def test_revoking_the_admin_role_hides_admin_panel_on_the_next_request(
    asgi_server: LiveServer, committed: Committed
) -> None:
    # Done with erin at globex, not alice at acme: the committed `rbac.role_revoked` audit event cannot be
    # removed (append-only log) and tests/api/test_api_writes.py expects exactly one such event in acme.
    token = get_token(asgi_server, committed, "erin@globex.test", tenant="globex")
    globex = url(asgi_server, "globex")
    assert "admin_panel" in mcp_list(globex, token)
    commit_in("tenant_globex", lambda: set_admin_role("erin@globex.test", grant=False))
    try:
        tools = mcp_list(globex, token)
        assert "admin_panel" not in tools and "admin_dashboard" not in tools
        assert "hello" in tools
        assert isinstance(call(globex, token, "admin_panel"), MCPError)
    finally:
        commit_in("tenant_globex", lambda: set_admin_role("erin@globex.test", grant=True))
    assert "admin_panel" in mcp_list(globex, token)


def test_a_deactivated_users_token_is_refused_on_the_next_request(
    asgi_server: LiveServer, committed: Committed
) -> None:
    """The endpoint reuses a verified token's principal while the RBAC version is unchanged; deactivating the user
    revokes their tokens (issue 18 finding 4: the deny-list is fed after commit) and changes that version, so
    the next request is refused, and the token stays dead when the user is reactivated."""
    token = get_token(asgi_server, committed, "erin@globex.test", tenant="globex")
    globex = url(asgi_server, "globex")
    assert "hello" in mcp_list(globex, token)
    assert "hello" in mcp_list(globex, token)  # the second request is served from the cached principal

    def set_active(active: bool) -> None:
        user = User.objects.get(email="erin@globex.test")
        user.is_active = active
        user.save()

    commit_in("tenant_globex", lambda: set_active(False))
    try:
        response = httpx2.post(
            globex,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401
        assert response.json()["error_description"] == "token revoked"
    finally:
        commit_in("tenant_globex", lambda: set_active(True))
    response = httpx2.post(
        globex,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401  # reactivation brings back the user, not the revoked token
    assert "hello" in mcp_list(globex, get_token(asgi_server, committed, "erin@globex.test", tenant="globex"))


def test_a_revoked_token_is_refused(asgi_server: LiveServer, committed: Committed) -> None:
    token = get_token(asgi_server, committed, "bob@acme.test")
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
    revoked = httpx2.post(
        f"{asgi_server.url}/t/acme/oauth/revoke", data={"token": token, "client_id": committed.client_ids["acme"]}
    )
    assert revoked.status_code == 200, revoked.text
    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "token revoked"


def test_revoking_the_refresh_token_also_ends_its_access_token_here(
    asgi_server: LiveServer, committed: Committed
) -> None:
    issued = get_tokens(asgi_server, committed, "carol@acme.test", scope="openid email offline_access")
    assert mcp_list(url(asgi_server), issued["access_token"]) == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)
    revoked = httpx2.post(
        f"{asgi_server.url}/t/acme/oauth/revoke",
        data={"token": issued["refresh_token"], "client_id": committed.client_ids["acme"]},
    )
    assert revoked.status_code == 200, revoked.text
    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {issued['access_token']}"},
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "token revoked"


def _refused(server: LiveServer, token: str) -> httpx2.Response:
    return httpx2.post(
        url(server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )


def test_a_token_deleted_in_the_dashboard_is_refused_at_once(asgi_server: LiveServer, committed: Committed) -> None:
    from oauth2_provider.models import get_access_token_model

    token = get_token(asgi_server, committed, "bob@acme.test")
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
    checksum = hashlib.sha256(token.encode()).hexdigest()
    commit_in_acme(lambda: get_access_token_model().objects.get(token_checksum=checksum).delete())
    response = _refused(asgi_server, token)
    assert response.status_code == 401 and response.json()["error_description"] == "token revoked"


def test_refresh_token_reuse_ends_the_whole_family_here_too(asgi_server: LiveServer, committed: Committed) -> None:
    issued = get_tokens(asgi_server, committed, "carol@acme.test", scope="openid email offline_access write")
    token_url = f"{asgi_server.url}/t/acme/oauth/token"
    refresh = {"grant_type": "refresh_token", "client_id": committed.client_ids["acme"]}
    first = httpx2.post(token_url, data={**refresh, "refresh_token": issued["refresh_token"]})
    assert first.status_code == 200, first.text
    rotated = first.json()["access_token"]
    assert mcp_list(url(asgi_server), rotated) == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)
    # The replaced access token stopped working when the refresh rotated it.
    assert _refused(asgi_server, issued["access_token"]).status_code == 401
    # Presenting the old refresh token again (a stolen copy) revokes the family, the rotated token included.
    reuse = httpx2.post(token_url, data={**refresh, "refresh_token": issued["refresh_token"]})
    assert reuse.status_code == 400
    response = _refused(asgi_server, rotated)
    assert response.status_code == 401 and response.json()["error_description"] == "token revoked"


def test_protected_resource_metadata_names_the_tenants_issuer(asgi_server: LiveServer, committed: Committed) -> None:
    body = httpx2.get(f"{asgi_server.url}/.well-known/oauth-protected-resource/t/acme/mcp/demo").json()
    assert body["resource"] == f"{asgi_server.url}/t/acme/mcp/demo"
    assert body["authorization_servers"] == [f"{asgi_server.url}/t/acme/oauth"]
    assert "read" in body["scopes_supported"]
    missing = httpx2.get(f"{asgi_server.url}/.well-known/oauth-protected-resource/t/acme/mcp/nosuchapp")
    assert missing.status_code == 404


def test_tool_calls_are_audited_with_the_review_pages_shape(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    token = tokens("bob@acme.test")
    call(url(asgi_server), token, "view_reports")
    call(url(asgi_server), token, "admin_panel")
    deadline = time.monotonic() + 10
    while True:
        with schema_context("tenant_acme"):
            events = list(AuditEvent.objects.filter(action="mcp.tool_call", actor_label="bob@acme.test"))
        found = {(e.data.get("tool"), e.outcome) for e in events}
        if {("view_reports", "allow"), ("admin_panel", "deny")} <= found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ("view_reports", "allow") in found and ("admin_panel", "deny") in found
    allowed = next(e for e in events if e.data["tool"] == "view_reports")
    assert set(allowed.data) == {"application", "tool", "reason", "duration_ms"}
    assert allowed.data["application"] == "demo"
    assert allowed.data["reason"] == "allowed: has role analyst"
    denied = next(e for e in events if e.data["tool"] == "admin_panel")
    assert denied.data["reason"] == "denied: needs any of roles [admin]"
    with schema_context("tenant_acme"):
        listed = AuditEvent.objects.filter(action="mcp.tools_listed", actor_label="bob@acme.test").first()
    assert listed is not None and listed.data == {
        "application": "demo",
        "count": len(EXPECTED["bob@acme.test"] | LOGIN_TOOLS),
    }


def test_arguments_are_audited_only_when_the_tool_policy_says_so(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    from rbac import services

    def log_arguments(value: bool) -> None:
        services.upsert_tool_policy(
            actor="tests", application=Application.objects.get(slug="demo"), tool_name="calculator", log_arguments=value
        )

    def events_with(marker: float) -> list[AuditEvent]:
        deadline = time.monotonic() + 10
        while True:
            with schema_context("tenant_acme"):
                found = [
                    event
                    for event in AuditEvent.objects.filter(
                        action="mcp.tool_call", actor_label="carol@acme.test", data__tool="calculator"
                    )
                    if event.data.get("arguments", {}).get("a") == marker
                ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    token = tokens("carol@acme.test")
    endpoint = url(asgi_server)
    commit_in_acme(lambda: log_arguments(True))
    try:
        marker = time.time()
        arguments = {"operation": "add", "a": marker, "b": 1, "api_key": "s3cr3t-in-arguments"}
        call(endpoint, token, "calculator", arguments)
        logged = events_with(marker)
        assert len(logged) == 1 and logged[0].data["arguments"]["operation"] == "add"
        assert "s3cr3t" not in json.dumps(logged[0].data)  # redacted by audit.record
        assert logged[0].data["arguments"]["api_key"] != "s3cr3t-in-arguments"
    finally:
        commit_in_acme(lambda: log_arguments(False))
    with schema_context("tenant_acme"):
        before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert not call(endpoint, token, "calculator", {"operation": "add", "a": 2, "b": 1}).is_error
    deadline = time.monotonic() + 10
    while True:
        with schema_context("tenant_acme"):
            later = list(
                AuditEvent.objects.filter(
                    seq__gt=before, action="mcp.tool_call", actor_label="carol@acme.test", data__tool="calculator"
                )
            )
        if later or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(later) == 1 and "arguments" not in later[0].data


def test_deactivating_the_application_answers_404_on_the_next_request(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    def set_active(value: bool) -> None:
        application = Application.objects.get(slug="demo")
        application.is_active = value
        application.save()

    token = tokens("bob@acme.test")
    commit_in_acme(lambda: set_active(False))
    try:
        response = httpx2.post(
            url(asgi_server),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 404
    finally:
        commit_in_acme(lambda: set_active(True))
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)


def test_a_client_credentials_token_is_never_a_user_even_with_a_numeric_client_id(
    asgi_server: LiveServer, committed: Committed
) -> None:
    """A client-credentials token names its client as `sub`. A client whose ID is a user's number (a row written
    around the form, which refuses such IDs) must not act as that user at MCP."""
    secret = "cc-secret-" + hashlib.sha256(b"numeric").hexdigest()

    def create() -> str:
        alice = User.objects.get(email="alice@acme.test")
        OAuthClient.objects.create(
            client_id=str(alice.pk),
            name="Numeric",
            client_type=OAuthClient.CLIENT_CONFIDENTIAL,
            authorization_grant_type=OAuthClient.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
        )
        return str(alice.pk)

    client_id = commit_in_acme(create)
    try:
        issued = httpx2.post(
            f"{asgi_server.url}/t/acme/oauth/token",
            data={"grant_type": "client_credentials", "resource": url(asgi_server)},
            auth=(client_id, secret),
        )
        assert issued.status_code == 200, issued.text
        response = httpx2.post(
            url(asgi_server),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**JSON_RPC, "Authorization": f"Bearer {issued.json()['access_token']}"},
        )
        assert response.status_code == 401
        assert response.json()["error_description"] == "token is not for a user"
    finally:
        commit_in_acme(lambda: OAuthClient.objects.filter(client_id=client_id, name="Numeric").delete())

    with schema_context("tenant_acme"), pytest.raises(ValidationError) as refused:
        OAuthClient(
            client_id="12", name="x", client_type="confidential", authorization_grant_type="client-credentials"
        ).full_clean(exclude=["client_secret", "user"])
    assert "cannot be a number only" in str(refused.value.message_dict["client_id"])
