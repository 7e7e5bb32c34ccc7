"""The /sdkmgr REST API in process (real Postgres, Redis, decision engine): client ids, errors, declarations,
protect-tool's permission matrix, session binding, rate limits, audit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from rbac import services as rbac
from rbac.models import Application, Role, Scope, ToolPolicy
from sdkmgr.clients import normalize
from sdkmgr.models import SdkClient
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db
AUTH = "/sdkmgr/mcp-auth"
SERVICES = "/sdkmgr/services"
DECLARED = [
    {"name": "hello", "rbac": {"roles": [], "require_all": False}},
    {"name": "admin_panel", "rbac": {"roles": ["admin"]}, "description": "Admin only"},
    {"name": "sdk_writer", "rbac": {"scopes": ["write"]}, "inputSchema": {"type": "object", "properties": {}}},
]


@pytest.fixture
def world(acme: Any) -> Iterator[dict[str, Any]]:
    """Application `sdk-api` in acme with policies for hello (open) and admin_panel (role admin); alice is an
    admin with scope write, bob has no role; a second application `sdk-api-2`."""
    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="sdk-api", name="SDK API tests")
        other = ApplicationFactory(slug="sdk-api-2", name="Another SDK app")
        rbac.upsert_tool_policy(actor="tests", application=app, tool_name="hello")
        rbac.upsert_tool_policy(actor="tests", application=app, tool_name="admin_panel", roles=["admin"])
        write = Scope.objects.get_or_create(name="write")[0]
        admin = Role.objects.get_or_create(name="admin")[0]
        admin.scopes.add(write)
        alice, bob = UserFactory(email="alice-sdk@acme.test"), UserFactory(email="bob-sdk@acme.test")
        rbac.grant_role(actor="tests", role=admin, user=alice)
        yield {"app": app, "other": other, "alice": alice, "bob": bob, "client_id": str(app.sdk_client_id)}


def session_for(app: Application, user: User | None, *, expired: bool = False) -> str:
    """An auth session as the login callback leaves it (authenticated for `user`)."""
    with schema_context("tenant_acme"):
        session = AuthSession(application=app, code_verifier="v" * 43)
        if user is not None:
            session.user, session.status = user, AuthSession.Status.AUTHENTICATED
            session.authenticated_at = timezone.now()
        session.save()
        if expired:
            AuthSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return session.pk


def post(path: str, client_id: str | None, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    extra = {"HTTP_X_CLIENT_ID": f"{client_id}-main-client"} if client_id else {}
    extra |= {f"HTTP_{key.upper()}": value for key, value in headers.items()}
    response = Client(enforce_csrf_checks=True).post(path, json.dumps(body), content_type="application/json", **extra)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_normalizes_every_spelling_the_sdk_sends() -> None:
    value = "0b7e6f1c-3a52-4c55-9a8e-2f6c1d1e9b10"
    for spelling in (value, f"{value}-main-client", f"{value}_main-client", value.replace("-", "_"), f'"{value}"'):
        assert normalize(spelling) == value
    for bad in ("", "your-client-id", "0b7e6f1c", f"{value}x", None, 42):
        assert normalize(bad) is None


def test_directory_follows_the_application(acme: Any) -> None:
    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="sdk-dir", name="Directory")
    entry = SdkClient.objects.get(client_id=app.sdk_client_id)
    assert (entry.tenant.slug, entry.application_slug, entry.is_active) == ("acme", "sdk-dir", True)
    with schema_context(acme.schema_name):
        app.is_active = False
        app.save()
    assert SdkClient.objects.get(client_id=app.sdk_client_id).is_active is False
    status, body = post(f"{AUTH}/tools/list", str(app.sdk_client_id), {"user_tools": []})
    assert (status, body["error"]) == (401, "invalid_client")
    with schema_context(acme.schema_name):
        app.delete()
    assert not SdkClient.objects.filter(client_id=app.sdk_client_id).exists()


@pytest.mark.parametrize("path", ["tools/list", "protect-tool", "tools/call/oauth_start", "cleanup-sessions"])
def test_unknown_or_malformed_client_ids_get_a_clear_json_error(world: dict[str, Any], path: str) -> None:
    for client_id in (str(uuid.uuid4()), "not-a-uuid"):
        status, body = post(f"{AUTH}/{path}", client_id, {})
        assert status == 401 and body["error"] == "invalid_client" and "SDK client id" in body["message"]
    status, body = post(f"{AUTH}/{path}", None, {})
    assert status == 401 and "client id is required" in body["message"]


def test_header_and_body_client_ids_must_agree(world: dict[str, Any]) -> None:
    body = {"client_id": f"{world['other'].sdk_client_id}-main-client"}
    status, answer = post(f"{AUTH}/tools/list", world["client_id"], body)
    assert status == 400 and "differ" in answer["message"]


def test_exact_paths_json_errors_no_redirects(world: dict[str, Any]) -> None:
    client = Client()
    slash = client.get(f"{AUTH}/health/")
    assert slash.status_code == 404 and slash.json()["error"] == "not_found"
    wrong = client.get(f"{AUTH}/protect-tool")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    garbage = Client().post(f"{AUTH}/tools/list", "{nope", content_type="application/json")
    assert garbage.status_code == 400 and "JSON object" in garbage.json()["message"]
    healthy = client.get(f"{AUTH}/health")
    assert healthy.status_code == 200 and healthy.json()["status"] == "healthy"
    assert client.get(f"{SERVICES}/health").json()["status"] == "healthy"


def test_tools_list_is_only_the_login_tools_without_a_session(world: dict[str, Any]) -> None:
    status, body = post(f"{AUTH}/tools/list", world["client_id"], {"session_id": None, "user_tools": DECLARED})
    assert status == 200 and sorted(tool["name"] for tool in body["tools"]) == sorted(LOGIN_TOOLS)


def test_tools_list_filters_declared_tools_by_the_users_grants(world: dict[str, Any]) -> None:
    alice = session_for(world["app"], world["alice"])
    bob = session_for(world["app"], world["bob"])
    listed = {}
    for who, session_id in (("alice", alice), ("bob", bob)):
        _, body = post(f"{AUTH}/tools/list", world["client_id"], {"session_id": session_id, "user_tools": DECLARED})
        listed[who] = sorted(tool["name"] for tool in body["tools"] if tool["name"] not in LOGIN_TOOLS)
    assert listed == {"alice": ["admin_panel", "hello", "sdk_writer"], "bob": ["hello"]}
    _, body = post(f"{AUTH}/tools/list", world["client_id"], {"session_id": alice, "user_tools": DECLARED})
    admin_panel = next(tool for tool in body["tools"] if tool["name"] == "admin_panel")
    assert admin_panel == {
        "name": "admin_panel",
        "description": "Admin only",
        "inputSchema": {"type": "object", "properties": {}},
    }


def test_declarations_seed_missing_rows_and_never_change_existing_ones(world: dict[str, Any], acme: Any) -> None:
    declared = [
        *DECLARED,
        {"name": "admin_panel", "rbac": {}},  # loosened in code: the existing row stays
        {"name": "admin_dashboard", "rbac": {}},  # a tool our code registers: seeded with our requirement
        {"name": "oauth_sneaky", "rbac": {}},
    ]
    status, _ = post(f"{AUTH}/tools/list", world["client_id"], {"user_tools": declared})
    assert status == 200
    with schema_context(acme.schema_name):
        rows = {row.tool_name: row for row in ToolPolicy.objects.filter(application=world["app"])}
        assert set(rows) == {"hello", "admin_panel", "sdk_writer", "admin_dashboard"}
        assert rows["admin_panel"].roles == ["admin"]
        assert (
            rows["sdk_writer"].scopes == ["write"] and "declared by the AuthSec SDK" in rows["sdk_writer"].description
        )
        assert rows["admin_dashboard"].roles == ["admin"]
        event = AuditEvent.objects.get(action="sdkmgr.tools_declared", target_label="sdk-api")
    assert event.actor_id == f"sdk:{world['client_id']}"
    assert sorted(event.data["seeded"]) == ["admin_dashboard", "sdk_writer"]
    assert event.data["differs_from_policy"] == ["admin_panel"] and event.data["ignored"] == ["oauth_sneaky"]


def test_bad_declarations_are_refused_with_the_reason(world: dict[str, Any]) -> None:
    for user_tools, reason in (
        ("x", "must be a list"),
        ([{"name": "bad name!"}], "needs a name"),
        ([{"name": "t", "rbac": {"roles": "admin,x" * 40}}], "1-160"),
        ([{"name": "t", "rbac": {"roles": [1]}}], "1-160"),
    ):
        status, body = post(f"{AUTH}/tools/list", world["client_id"], {"user_tools": user_tools})
        assert status == 400 and reason in body["message"], body


def test_protect_tool_permission_matrix(world: dict[str, Any], acme: Any) -> None:
    client_id, app = world["client_id"], world["app"]

    def protect(session_id: str | None, tool: str, client: str = client_id) -> tuple[int, dict[str, Any]]:
        return post(f"{AUTH}/protect-tool", client, {"session_id": session_id, "tool_name": tool})

    status, body = protect(None, "hello")  # anonymous
    assert (status, body["allowed"], body["status_code"]) == (401, False, 401)
    alice = session_for(app, world["alice"])
    status, body = protect(alice, "admin_panel")  # grant
    assert status == 200 and body["allowed"] is True and body["session_id"] == alice
    info = body["user_info"]
    assert info["email"] == "alice-sdk@acme.test" and info["user_id"] == world["alice"].pk
    assert info["tenant_id"] == info["workspace_id"] == info["org_id"] == "acme"
    assert info["roles"] == ["admin"] and info["scopes"] == ["write"]
    assert all(isinstance(info[kind], list) for kind in ("roles", "groups", "scopes", "resources", "permissions"))
    assert "access_token" not in info
    status, body = protect(session_for(app, world["bob"]), "admin_panel")  # no grant
    assert (status, body["allowed"], body["error"], body["status_code"]) == (403, False, "forbidden", 403)
    assert "admin" in body["message"]
    status, body = protect(alice, "no_such_tool")  # no policy row: denied
    assert status == 403 and body["allowed"] is False
    status, body = protect(alice, "hello", str(world["other"].sdk_client_id))  # another application's client id
    assert (status, body["allowed"], body["error"]) == (401, False, "unauthorized")
    status, body = protect(session_for(app, world["alice"], expired=True), "hello")  # expired
    assert status == 401 and body["allowed"] is False
    status, body = protect(session_for(app, None), "hello")  # still pending
    assert status == 401 and body["allowed"] is False
    with schema_context(acme.schema_name):
        outcomes = sorted(
            AuditEvent.objects.filter(action="mcp.tool_call", target_label="sdk-api").values_list("outcome", flat=True)
        )
        assert outcomes == ["allow", "deny", "deny", "deny", "deny", "deny"]
        assert AuditEvent.objects.get(action="mcp.tool_call", target_label="sdk-api-2").outcome == "deny"


def test_another_tenants_client_id_cannot_use_the_session(world: dict[str, Any], globex: Any) -> None:
    with schema_context(globex.schema_name):
        theirs = ApplicationFactory(slug="sdk-api", name="Globex's")
    alice = session_for(world["app"], world["alice"])
    status, body = post(f"{AUTH}/protect-tool", str(theirs.sdk_client_id), {"session_id": alice, "tool_name": "hello"})
    assert (status, body["allowed"]) == (401, False)
    _, body = post(f"{AUTH}/tools/call/oauth_status", str(theirs.sdk_client_id), {"arguments": {"session_id": alice}})
    assert json.loads(body["content"][0]["text"])["status"] == "not_found"


def test_login_tools_share_the_hosted_endpoints_sessions(world: dict[str, Any], acme: Any) -> None:
    status, body = post(f"{AUTH}/tools/call/oauth_start", world["client_id"], {"arguments": {"open_browser": "false"}})
    started = json.loads(body["content"][0]["text"])
    assert (
        status == 200 and started["status"] == "pending" and "/t/acme/oauth/authorize?" in started["authorization_url"]
    )
    with schema_context(acme.schema_name):
        session = AuthSession.objects.get(pk=started["session_id"])
        assert session.application == world["app"]
    _, body = post(
        f"{AUTH}/tools/call/oauth_status", world["client_id"], {"arguments": {"session_id": started["session_id"]}}
    )
    assert json.loads(body["content"][0]["text"]) == {"status": "pending", "session_id": started["session_id"]}
    # Found through the session index (the SDK CLI's status/{id}), only with the right client id (or none).
    assert Client().get(f"{AUTH}/status/{started['session_id']}").json()["status"] == "pending"
    other = Client().get(f"{AUTH}/status/{started['session_id']}", HTTP_X_CLIENT_ID=str(world["other"].sdk_client_id))
    assert other.json()["status"] == "not_found"
    assert Client().get(f"{AUTH}/status/unknown").json()["status"] == "not_found"
    _, body = post(
        f"{AUTH}/tools/call/oauth_logout", world["client_id"], {"arguments": {"session_id": started["session_id"]}}
    )
    assert json.loads(body["content"][0]["text"])["status"] == "logged_out"
    _, body = post(f"{AUTH}/tools/call/oauth_status", world["client_id"], {"arguments": {}})
    assert body["isError"] is True and "session_id is required" in body["content"][0]["text"]
    status, body = post(f"{AUTH}/tools/call/delete_everything", world["client_id"], {"arguments": {}})
    assert status == 404 and body["error"] == "unknown_tool"


def test_start_answers_the_cli_shape(world: dict[str, Any]) -> None:
    status, body = post(f"{AUTH}/start", None, {"client_id": world["client_id"], "app_name": "cli"})
    assert status == 200 and set(body) == {
        "session_id", "authorization_url", "status", "expires_in", "user_code", "message",
    }  # fmt: skip
    assert body["user_code"] in body["message"] and body["expires_in"] == 600


def test_cleanup_is_audited_and_ends_no_session(world: dict[str, Any], acme: Any) -> None:
    alice = session_for(world["app"], world["alice"])
    status, body = post(f"{AUTH}/cleanup-sessions", world["client_id"], {"reason": "server_shutdown"})
    assert status == 200 and "expire" in body["message"]
    with schema_context(acme.schema_name):
        assert AuthSession.objects.get(pk=alice).status == AuthSession.Status.AUTHENTICATED
        event = AuditEvent.objects.get(action="sdkmgr.cleanup_requested", target_label="sdk-api")
    assert event.data["reason"] == "server_shutdown"


@pytest.fixture
def window_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rate limits' clock pinned to the first second of the current one-minute window; tests move it."""
    import time

    from authsec_site.lib import ratelimit
    from sdkmgr import throttle

    now = [time.time() // throttle.WINDOW * throttle.WINDOW]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    return now


@override_settings(SDKMGR_RATE_LIMIT_PER_MINUTE=3, SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE=1)
def test_rate_limits_are_per_client(world: dict[str, Any], window_clock: list[float]) -> None:
    codes = [post(f"{AUTH}/tools/list", world["client_id"], {})[0] for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = Client().post(
        f"{AUTH}/tools/list", "{}", content_type="application/json", HTTP_X_CLIENT_ID=world["client_id"]
    )
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["error"] == "rate_limited"
    other = str(world["other"].sdk_client_id)  # another client has its own budget
    assert post(f"{AUTH}/tools/call/oauth_start", other, {"arguments": {}})[0] == 200
    status, body = post(f"{AUTH}/tools/call/oauth_start", other, {"arguments": {}})  # logins: 1 a minute
    assert status == 429 and "logins" in body["message"]


@override_settings(SDKMGR_RATE_LIMIT_PER_MINUTE=2)
def test_a_rate_limit_window_rolls_over(world: dict[str, Any], window_clock: list[float]) -> None:
    codes = [post(f"{AUTH}/tools/list", world["client_id"], {})[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    window_clock[0] += 59  # the last second of the same window: still limited, retry in 1 s
    response = Client().post(
        f"{AUTH}/tools/list", "{}", content_type="application/json", HTTP_X_CLIENT_ID=world["client_id"]
    )
    assert response.status_code == 429 and response["Retry-After"] == "1"
    window_clock[0] += 1  # the next window: a fresh budget
    assert [post(f"{AUTH}/tools/list", world["client_id"], {})[0] for _ in range(3)] == [200, 200, 429]


def test_services_endpoints_need_an_authenticated_session(world: dict[str, Any]) -> None:
    for path in ("credentials", "user-details"):
        status, body = post(f"{SERVICES}/{path}", world["client_id"], {"session_id": "nope", "service_name": "X"})
        assert status == 401 and body["error"] == "unauthorized"
        status, body = post(f"{SERVICES}/{path}", world["client_id"], {"session_id": "nope"})
        assert status == 400 and "service_name" in body["message"]
    alice = session_for(world["app"], world["alice"])
    # (credentials with a session: tests/sdk/test_seed_server.py, live — ServiceAccessSDK reads in its own thread)
    status, body = post(f"{SERVICES}/user-details", world["client_id"], {"session_id": alice, "service_name": "Nope"})
    assert status == 404 and body["error"] == "service_not_found"
    assert connection.schema_name == "public"


def test_dashboard_and_api_show_the_sdk_client_id(world: dict[str, Any]) -> None:
    from tests.support.accounts import ADMIN_PASSWORD

    client = Client()
    login = client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    assert login.status_code == 302
    app = world["app"]
    listing = client.get("/t/acme/admin/rbac/application/")
    page = client.get(f"/t/acme/admin/rbac/application/{app.pk}/change/")
    assert listing.status_code == page.status_code == 200
    assert world["client_id"] in listing.content.decode() and world["client_id"] in page.content.decode()
    api = client.get(f"/t/acme/api/applications/{app.pk}/")
    assert api.status_code == 200 and api.json()["sdk_client_id"] == world["client_id"]


def test_a_session_revoked_in_the_dashboard_is_refused(world: dict[str, Any]) -> None:
    from mcp_endpoint.services import revoke_auth_sessions

    alice = session_for(world["app"], world["alice"])
    protect = {"session_id": alice, "tool_name": "hello"}
    assert post(f"{AUTH}/protect-tool", world["client_id"], protect)[1]["allowed"] is True
    with schema_context("tenant_acme"):
        # What the dashboard's Tokens & sessions revoke calls (tests/mcp_endpoint/test_admin_sessions.py).
        revoke_auth_sessions([AuthSession.objects.select_related("application").get(pk=alice)], actor=world["alice"])
    status, body = post(f"{AUTH}/protect-tool", world["client_id"], protect)
    assert (status, body["allowed"]) == (401, False)


def test_migrating_a_tenant_fills_the_directory(world: dict[str, Any]) -> None:
    from sdkmgr.signals import _on_migrated

    SdkClient.objects.filter(client_id=world["app"].sdk_client_id).delete()
    with schema_context("tenant_acme"):
        _on_migrated(sender=None)
    assert SdkClient.objects.get(client_id=world["app"].sdk_client_id).application_slug == "sdk-api"
