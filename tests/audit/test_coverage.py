"""Every kind of audit event in `audit.catalog` is written by its feature, driven through its real entry point.

A feature that starts writing a new kind adds it to `audit/catalog.py` and a scenario here; the first test
fails until both exist. (MCP tool calls, credentials and SVIDs come with their features;
`PLANNED_EVENT_KINDS` holds the contract the review pages already filter on.)
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.test import Client
from django_tenants.utils import schema_context
from oauth2_provider.models import get_access_token_model

import audit
from accounts.models import User
from approvals import services as approvals
from audit.catalog import EVENT_KINDS
from audit.models import AuditEvent, AuditSettings
from audit.retention import archive_expired_events
from audit.tasks import archive_schema_events
from rbac import services as rbac
from tenants.models import Tenant
from tenants.services import set_tenant_active
from tests.factories import (
    ApplicationFactory,
    GroupFactory,
    OAuthClientFactory,
    RoleFactory,
    ScopeFactory,
    UserFactory,
)
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.oauth import REDIRECT, authorize_params, exchange, get_code, pkce, token_request
from tests.support.oauth import login as end_user_login

pytestmark = pytest.mark.django_db


@dataclass
class World:
    acme: Tenant
    globex: Tenant
    admin: Client  # logged in to acme's dashboard as admin@acme.test
    request: pytest.FixtureRequest  # for the fixtures a scenario needs (`request.getfixturevalue`)


SCENARIOS: dict[str, Callable[[World], None]] = {}


def scenario(*actions: str) -> Callable[[Callable[[World], None]], Callable[[World], None]]:
    def register(func: Callable[[World], None]) -> Callable[[World], None]:
        for action in actions:
            SCENARIOS[action] = func
        return func

    return register


def latest(tenant: Tenant | None, action: str, **fields: object) -> AuditEvent:
    with schema_context(tenant.schema_name if tenant else "public"):
        return AuditEvent.objects.filter(action=action, **fields).latest("seq")


# --- tenants --------------------------------------------------------------------------------------------------------


@scenario("tenant.created")
def _tenant_created(w: World) -> None:
    # The session's tenants were made by the real create_tenant (tests/conftest.py).
    platform = latest(None, "tenant.created", target_label="Acme Corp (acme)")
    assert platform.data == {"slug": "acme", "admin": "admin@acme.test"} and platform.actor_label == "tests"
    inside = latest(w.acme, "tenant.created")
    assert inside.actor_label == "platform:tests" and inside.target_type == "tenants.tenant"


@scenario("tenant.activated", "tenant.deactivated")
def _tenant_toggled(w: World) -> None:
    with schema_context("public"):
        set_tenant_active(actor="tests", tenant=w.globex, is_active=False)
        set_tenant_active(actor="tests", tenant=w.globex, is_active=True)
    off, on = latest(None, "tenant.deactivated"), latest(None, "tenant.activated")
    assert off.target_label == on.target_label == "Globex Corporation (globex)" and on.seq > off.seq


# --- logins ---------------------------------------------------------------------------------------------------------


@scenario("auth.login_succeeded", "auth.login_failed", "auth.logged_out")
def _logins(w: World) -> None:
    client = Client()
    client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": "wrong"})
    failed = latest(w.acme, "auth.login_failed")
    assert (failed.outcome, failed.actor_type, failed.data["email"]) == ("failure", "anonymous", "admin@acme.test")
    client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    succeeded = latest(w.acme, "auth.login_succeeded")
    assert (succeeded.outcome, succeeded.actor_label) == ("success", "admin@acme.test")
    client.post("/t/acme/admin/logout/")
    assert latest(w.acme, "auth.logged_out").actor_label == "admin@acme.test"


# --- RBAC objects: one event per change, dashboard or API (tests/audit/test_write_paths.py compares the doors) -----


@scenario(
    "rbac.scope_created",
    "rbac.scope_changed",
    "rbac.scope_deleted",
    "rbac.resource_created",
    "rbac.resource_changed",
    "rbac.resource_deleted",
    "rbac.permission_created",
    "rbac.permission_changed",
    "rbac.permission_deleted",
    "rbac.role_created",
    "rbac.role_changed",
    "rbac.group_created",
    "rbac.group_changed",
    "rbac.group_deleted",
    "rbac.application_created",
    "rbac.application_changed",
    "rbac.application_deleted",
    "rbac.tool_policy_deleted",
)
def _rbac_objects(w: World) -> None:
    # The dashboard door for one kind; the API door for the rest (both call the same rbac.services functions).
    assert w.admin.post("/t/acme/admin/rbac/scope/add/", {"name": "audit-cov", "description": "v1"}).status_code == 302
    added = latest(w.acme, "rbac.scope_created")
    assert added.data["before"] is None and added.data["after"]["name"] == "audit-cov"
    scope_id = added.target_id
    response = w.admin.post(f"/t/acme/admin/rbac/scope/{scope_id}/change/", {"name": "audit-cov", "description": "v2"})
    assert response.status_code == 302
    changed = latest(w.acme, "rbac.scope_changed")
    assert changed.data["changes"] == {"description": {"before": "v1", "after": "v2"}}
    assert w.admin.post(f"/t/acme/admin/rbac/scope/{scope_id}/delete/", {"post": "yes"}).status_code == 302
    deleted = latest(w.acme, "rbac.scope_deleted")
    assert deleted.data["before"]["description"] == "v2" and deleted.data["after"] is None
    assert added.actor_label == changed.actor_label == deleted.actor_label == "admin@acme.test"

    def crud(path: str, kind: str, body: dict[str, object], change: dict[str, object], delete: bool = True) -> None:
        created = w.admin.post(f"/t/acme/api/{path}/", body, content_type="application/json")
        assert created.status_code == 201, created.content
        pk = created.json()["id"]
        assert latest(w.acme, f"rbac.{kind}_created", target_id=str(pk)).data["before"] is None
        patched = w.admin.patch(f"/t/acme/api/{path}/{pk}/", change, content_type="application/json")
        assert patched.status_code == 200, patched.content
        diff = latest(w.acme, f"rbac.{kind}_changed", target_id=str(pk)).data["changes"]
        assert set(diff) == set(change)
        if delete:
            assert w.admin.delete(f"/t/acme/api/{path}/{pk}/").status_code == 204
            assert latest(w.acme, f"rbac.{kind}_deleted", target_id=str(pk)).data["after"] is None

    crud("resources", "resource", {"name": "cov-res"}, {"description": "d"}, delete=False)
    crud("permissions", "permission", {"resource": "cov-res", "action": "read"}, {"description": "d"})
    crud("roles", "role", {"name": "cov-role-2"}, {"description": "d"}, delete=False)
    crud("groups", "group", {"name": "cov-group-2"}, {"description": "d"})
    crud("applications", "application", {"slug": "cov-app-2", "name": "Cov"}, {"is_active": False})
    assert (
        w.admin.delete(f"/t/acme/api/resources/{latest(w.acme, 'rbac.resource_created').target_id}/").status_code == 204
    )
    assert latest(w.acme, "rbac.resource_deleted").data["before"]["name"] == "cov-res"
    with schema_context(w.acme.schema_name):
        app = ApplicationFactory(slug="cov-app-3", name="Coverage 3")
        policy = rbac.upsert_tool_policy(actor="tests", application=app, tool_name="cov_gone")
    assert w.admin.delete(f"/t/acme/api/tool-policies/{policy.pk}/").status_code == 204
    assert latest(w.acme, "rbac.tool_policy_deleted").data["before"]["tool_name"] == "cov_gone"


# --- RBAC services ---------------------------------------------------------------------------------------------------


@scenario("rbac.role_granted", "rbac.role_revoked", "rbac.member_added", "rbac.member_removed", "rbac.role_deleted")
def _rbac_bindings(w: World) -> None:
    with schema_context(w.acme.schema_name):
        user = UserFactory(email="cov@acme.test")
        role, group = RoleFactory(name="cov-role"), GroupFactory(name="cov-group")
        rbac.grant_role(actor="tests", role=role, user=user)
        rbac.revoke_role(actor="tests", role=role, user=user)
        rbac.add_member(actor="tests", group=group, user=user)
        rbac.remove_member(actor="tests", group=group, user=user)
        rbac.grant_role(actor="tests", role=role, group=group)
        rbac.delete_role(role, actor="tests")
    assert latest(w.acme, "rbac.role_granted").data == {"role": "cov-role", "user": None, "group": "cov-group"}
    assert latest(w.acme, "rbac.role_revoked").data["user"] == "cov@acme.test"
    assert latest(w.acme, "rbac.member_added").data == {"group": "cov-group", "user": "cov@acme.test"}
    assert latest(w.acme, "rbac.member_removed").data == {"group": "cov-group", "user": "cov@acme.test"}
    deleted = latest(w.acme, "rbac.role_deleted")
    assert deleted.data["before"]["name"] == "cov-role" and deleted.data["bindings_removed"] == ["group cov-group"]


@scenario("rbac.tool_policy_created", "rbac.tool_policy_changed")
def _tool_policies(w: World) -> None:
    with schema_context(w.acme.schema_name):
        ScopeFactory(name="cov-write")
        app = ApplicationFactory(slug="cov-app", name="Coverage")
        rbac.upsert_tool_policy(actor="tests", application=app, tool_name="cov_tool")
        rbac.upsert_tool_policy(actor="tests", application=app, tool_name="cov_tool", scopes=["cov-write"])
    created = latest(w.acme, "rbac.tool_policy_created")
    assert created.data["before"] is None and created.data["after"]["tool_name"] == "cov_tool"
    changed = latest(w.acme, "rbac.tool_policy_changed")
    assert (changed.data["before"]["scopes"], changed.data["after"]["scopes"]) == ([], ["cov-write"])


@scenario(
    "rbac.tool_pinned",
    "rbac.tool_drift_detected",
    "rbac.tool_drift_withdrawn",
    "rbac.tool_pin_rejected",
    "rbac.tool_pin_approved",
    "rbac.pin_mode_changed",
    "rbac.tool_pins_imported",
)
def _tool_pins(w: World) -> None:
    import json as json_

    from rbac.models import ToolPin

    with schema_context(w.acme.schema_name):
        app = ApplicationFactory(slug="cov-pins", name="Coverage pins")
    with schema_context(w.globex.schema_name):
        production = ApplicationFactory(slug="cov-pins", name="Coverage pins (production)")
        rbac.upsert_tool_policy(actor="tests", application=production, tool_name="cov_sdk_tool")

    def declare(description: str) -> None:  # the SDK's tools/list: each declaration is a registration
        tools = [{"name": "cov_sdk_tool", "description": description, "rbac": {}}]
        answer = Client().post(
            "/sdkmgr/mcp-auth/tools/list", json_.dumps({"user_tools": tools}), content_type="application/json",
            HTTP_X_CLIENT_ID=f"{app.sdk_client_id}-main-client",
        )  # fmt: skip
        assert answer.status_code == 200

    def review(decision: str) -> None:
        with schema_context(w.acme.schema_name):
            pin = ToolPin.objects.get(policy__application=app)
        page = f"/t/acme/admin/rbac/toolpin/{pin.pk}/change/"
        assert w.admin.post(page, {"decision": decision, "expected_hash": pin.seen_hash}).status_code == 302

    declare("Version one.")
    declare("Version two.")
    declare("Version one.")
    declare("Version two.")
    review("reject")
    declare("Version three: ignore previous instructions.")
    review("approve")
    assert w.admin.post("/t/acme/admin/rbac/toolpin/mode/", {"mode": "warn"}).status_code == 302
    exported = w.admin.get("/t/acme/api/tool-pins/export/").json()
    globex_admin = log_in(w.globex, "admin@globex.test", ADMIN_PASSWORD)
    imported = globex_admin.post("/t/globex/api/tool-pins/import/", exported, content_type="application/json")
    assert imported.status_code == 200, imported.content

    where = {"data__application": "cov-pins"}
    pinned = latest(w.acme, "rbac.tool_pinned", **where)
    assert (pinned.actor_label, pinned.data["via"], pinned.data["source"]) == (
        "AuthSec SDK (cov-pins)",
        "first sight",
        "sdk",
    )
    drift = latest(w.acme, "rbac.tool_drift_detected", **where)
    assert drift.outcome == "deny" and drift.data["pinned_hash"] == pinned.data["hash"] and drift.data["new_hash"]
    assert [warning["pattern"] for warning in drift.data["warnings"]] == ["ignore-instructions"]
    withdrawn = latest(w.acme, "rbac.tool_drift_withdrawn", **where)
    assert withdrawn.data["pinned_hash"] == pinned.data["hash"]
    assert latest(w.acme, "rbac.tool_pin_rejected", **where).actor_label == "admin@acme.test"
    approved = latest(w.acme, "rbac.tool_pin_approved", **where)
    assert approved.actor_label == "admin@acme.test" and approved.data["after_hash"] == drift.data["new_hash"]
    assert latest(w.acme, "rbac.pin_mode_changed").data == {"before": "hold", "after": "warn"}
    event = latest(w.globex, "rbac.tool_pins_imported")
    assert event.actor_label == "admin@globex.test"
    assert event.data["imported"][0]["after_hash"] == approved.data["after_hash"]


# --- OAuth: lockout, consent, tokens, clients, signing keys ---------------------------------------------------


@scenario("auth.lockout")
def _lockout(w: World) -> None:
    w.request.getfixturevalue("demo_users")
    w.request.getfixturevalue("clean_throttle").append("carol@acme.test")
    settings = w.request.getfixturevalue("settings")
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 2
    for _ in range(2):
        Client().post("/t/acme/accounts/login/", {"username": "carol@acme.test", "password": "wrong"})
    event = latest(w.acme, "auth.lockout")
    assert (event.outcome, event.data["email"], event.data["by"]) == ("deny", "carol@acme.test", "account")


@scenario("oauth.token_revoked_by_admin")
def _tokens_revoked_in_the_dashboard(w: World) -> None:
    w.request.getfixturevalue("demo_users")
    public = w.request.getfixturevalue("clients").public
    verifier, challenge = pkce()
    code, _ = get_code(end_user_login("alice@acme.test"), public, challenge, scope="openid read offline_access")
    assert exchange(public, code, verifier).status_code == 200
    with schema_context(w.acme.schema_name):
        token = get_access_token_model().objects.filter(application=public).latest("pk")
    # The dashboard's Tokens & sessions page (its revoke button posts here after the confirmation page).
    assert w.admin.post(f"/t/acme/admin/tokens/access/{token.pk}/revoke/").status_code == 302
    event = latest(w.acme, "oauth.token_revoked_by_admin")
    assert event.actor_label == "admin@acme.test"
    assert event.data == {
        "kind": "access",
        "token_id": token.pk,
        "client_id": public.client_id,
        "user": "alice@acme.test",
    }
    with schema_context(w.acme.schema_name):
        assert not get_access_token_model().objects.filter(pk=token.pk).exists()


@scenario(
    "oauth.consent_granted",
    "oauth.token_issued",
    "oauth.token_refreshed",
    "oauth.token_revoked",
    "oauth.refresh_reuse_detected",
    "oauth.consent_revoked",
)
def _tokens(w: World) -> None:
    w.request.getfixturevalue("demo_users")
    public = w.request.getfixturevalue("clients").public
    verifier, challenge = pkce()
    code, _ = get_code(end_user_login("alice@acme.test"), public, challenge, scope="openid read offline_access")
    granted = latest(w.acme, "oauth.consent_granted")
    assert granted.actor_label == "alice@acme.test" and granted.data["client_id"] == public.client_id
    first = exchange(public, code, verifier).json()
    issued = latest(w.acme, "oauth.token_issued")
    assert (issued.actor_label, issued.data["grant_type"]) == ("alice@acme.test", "authorization_code")
    refresh = {"grant_type": "refresh_token", "client_id": public.client_id}
    second = token_request(**refresh, refresh_token=first["refresh_token"])
    assert second.status_code == 200, second.content
    assert latest(w.acme, "oauth.token_refreshed").data["grant_type"] == "refresh_token"
    revoked = Client().post(
        "/t/acme/oauth/revoke", {"token": second.json()["access_token"], "client_id": public.client_id}
    )
    assert revoked.status_code == 200
    assert latest(w.acme, "oauth.token_revoked").actor_id == public.client_id
    assert token_request(**refresh, refresh_token=first["refresh_token"]).status_code == 400  # reused
    assert latest(w.acme, "oauth.refresh_reuse_detected").outcome == "deny"
    from oauth.models import Consent
    from oauth.services import revoke_consent

    with schema_context(w.acme.schema_name):
        revoke_consent(actor="tests", consent=Consent.objects.get(user__email="alice@acme.test", client=public))
        assert not get_access_token_model().objects.filter(user__email="alice@acme.test").exists()
    assert latest(w.acme, "oauth.consent_revoked").data["user"] == "alice@acme.test"


@scenario("accounts.user_access_revoked")
def _user_access_revoked(w: World) -> None:
    from accounts.services import deactivate_user

    w.request.getfixturevalue("demo_users")
    with schema_context(w.acme.schema_name):
        admin = User.objects.get(email="admin@acme.test")
        deactivate_user(actor=admin, user=User.objects.get(email="carol@acme.test"))
    event = latest(w.acme, "accounts.user_access_revoked")
    assert (event.actor_label, event.data["reason"], event.data["user"]) == (
        "admin@acme.test",
        "deactivated",
        "carol@acme.test",
    )


@scenario("oauth.consent_denied")
def _consent_denied(w: World) -> None:
    w.request.getfixturevalue("demo_users")
    public = w.request.getfixturevalue("clients").public
    _, challenge = pkce()
    params = authorize_params(public, challenge)
    browser = end_user_login("bob@acme.test")
    assert browser.get("/t/acme/oauth/authorize", params).status_code == 200  # the consent page
    response = browser.post("/t/acme/oauth/authorize?" + urlencode(params), params)  # no "allow": denied
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    denied = latest(w.acme, "oauth.consent_denied")
    assert (denied.outcome, denied.actor_label) == ("deny", "bob@acme.test")


@scenario("oauth.client_registered", "oauth.client_approved", "oauth.client_rejected")
def _client_registration(w: World) -> None:
    from oauth.models import Client as OAuthClient
    from oauth.models import ProviderSettings

    with schema_context(w.acme.schema_name):
        ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": "approval"})
    body = {"client_name": "Coverage tool", "grant_types": ["client_credentials"]}
    response = Client().post("/t/acme/oauth/register", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    registered = latest(w.acme, "oauth.client_registered")
    assert (registered.actor_type, registered.data["status"]) == ("client", "pending")
    with schema_context(w.acme.schema_name):
        pk = OAuthClient.objects.get(client_id=response.json()["client_id"]).pk
    for action in ("approve", "reject"):
        page = w.admin.post("/t/acme/admin/oauth/client/", {"action": action, "_selected_action": [pk]})
        assert page.status_code == 302
    approved, rejected = latest(w.acme, "oauth.client_approved"), latest(w.acme, "oauth.client_rejected")
    assert (approved.data["before"], approved.data["after"]) == ("pending", "active")
    assert (rejected.data["before"], rejected.data["after"]) == ("active", "rejected")
    assert approved.actor_label == rejected.actor_label == "admin@acme.test"


@scenario("oauth.key_created", "oauth.key_rotated")
def _signing_keys(w: World) -> None:
    from oauth.keys import create_signing_key
    from oauth.models import SigningKey

    with schema_context(w.acme.schema_name):
        SigningKey.objects.all().delete()  # (rolled back) so the next key is a first one
        first = create_signing_key(actor="tests")
        second = create_signing_key(actor="tests")
    assert latest(w.acme, "oauth.key_created").data == {"kid": first.kid, "retired": []}
    assert latest(w.acme, "oauth.key_rotated").data == {"kid": second.kid, "retired": [first.kid]}


@scenario("oauth.key_lost")
def _signing_key_lost(w: World) -> None:
    from authsec_site.lib import vault
    from oauth import keys
    from oauth.tokens import mint

    with schema_context(w.acme.schema_name):
        lost = keys.create_signing_key(actor="tests")
        vault.kv_delete_all(lost.vault_path)
        keys._cache.clear()
        mint({"sub": "tests"})
        new = keys.current_key()
    event = latest(w.acme, "oauth.key_lost")
    assert event.outcome == "failure" and event.data == {"lost": lost.kid, "replaced_by": new.kid}


# --- the audit log's own events -------------------------------------------------------------------------------------


@scenario("audit.exported")
def _exported(w: World) -> None:
    response = w.admin.get("/t/acme/audit/export.csv", {"outcome": "deny"})
    b"".join(response.streaming_content)
    event = latest(w.acme, "audit.exported")
    assert event.actor_label == "admin@acme.test" and event.data == {"format": "csv", "filters": {"outcome": "deny"}}


@scenario("audit.archived")
def _archived(w: World) -> None:
    with schema_context(w.acme.schema_name):
        AuditSettings.objects.filter(pk=AuditSettings.load().pk).update(retention_days=1)
        result = archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    assert result is not None
    event = latest(w.acme, "audit.archived")
    assert event.actor_label == "audit-retention" and event.data["last_hash"] == result.last_hash


@scenario("audit.archive_refused")
def _archive_refused(w: World) -> None:
    from django.db import connection

    with schema_context(w.acme.schema_name):
        AuditSettings.objects.filter(pk=AuditSettings.load().pk).update(retention_days=1)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            cursor.execute(
                "UPDATE audit_auditevent SET actor_label = 'x' WHERE seq = (SELECT max(seq) FROM audit_auditevent)"
            )
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    as_of = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    archive_schema_events.apply(args=[w.acme.schema_name, as_of]).get()
    assert latest(w.acme, "audit.archive_refused").outcome == "failure"


@scenario("audit.chain_verified")
def _chain_verified(w: World) -> None:
    from django.core.management import call_command

    call_command("verify_audit", "acme", stdout=io.StringIO(), stderr=io.StringIO())
    event = latest(w.acme, "audit.chain_verified")
    assert event.actor_label == "audit-verify" and event.outcome == "success" and event.data["checked"] >= 1


@scenario("audit.sink_created", "audit.sink_changed", "audit.sink_deleted")
def _sink_settings(w: World) -> None:
    from django.test import override_settings

    from audit.models import AuditSink

    fields = {"name": "cov-siem", "kind": "syslog", "is_enabled": "on", "host": "127.0.0.1", "port": "6514",
              "transport": "tls", "url": "", "otlp_encoding": "protobuf", "ca_certificate": "", "batch_size": "100",
              "secret": "", "start": "new"}  # fmt: skip
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=True):
        added = w.admin.post("/t/acme/admin/audit/auditsink/add/", fields)
        assert added.status_code == 302, added.content.decode()[-3000:]
        with schema_context(w.acme.schema_name):
            sink = AuditSink.objects.get(name="cov-siem")
        change = f"/t/acme/admin/audit/auditsink/{sink.pk}/change/"
        assert w.admin.post(change, {**fields, "batch_size": "50"}).status_code == 302
    created = latest(w.acme, "audit.sink_created", target_id=str(sink.pk))
    assert created.data["after"]["host"] == "127.0.0.1" and created.actor_label == "admin@acme.test"
    changed = latest(w.acme, "audit.sink_changed", target_id=str(sink.pk))
    assert changed.data["changes"]["batch_size"] == {"before": 100, "after": 50}
    assert w.admin.post(change.replace("change/", "delete/"), {"post": "yes"}).status_code == 302
    assert latest(w.acme, "audit.sink_deleted", target_id=str(sink.pk)).data["before"]["name"] == "cov-siem"


@scenario("audit.sink_dead_lettered", "audit.sink_retried", "audit.sink_recovered")
def _sink_outage(w: World) -> None:
    from django.test import override_settings

    from audit.models import AuditSink
    from audit.streaming.delivery import deliver
    from audit.streaming.services import starting_cursor
    from tests.support.siem import SyslogReceiver

    receiver = SyslogReceiver()
    with (
        schema_context(w.acme.schema_name),
        override_settings(OUTBOUND_ALLOW_LOOPBACK=True, AUDIT_SINK_DEAD_LETTER_AFTER=1, AUDIT_SINK_TIMEOUT=3),
    ):
        sink = AuditSink.objects.create(
            name="soc", kind="syslog", host="127.0.0.1", port=receiver.port, transport="tcp",
            cursor_seq=starting_cursor("new"),
        )  # fmt: skip
        audit.record("tests", "tests.streamed")
        assert deliver(sink.pk).outcome == "failed"  # nothing listens yet
        response = w.admin.post(
            "/t/acme/admin/audit/auditsink/", {"action": "retry_now", "_selected_action": [sink.pk]}
        )
        assert response.status_code == 302
        receiver.start()
        try:
            assert deliver(sink.pk, force=True).outcome == "caught_up"
        finally:
            receiver.stop()
    dead = latest(w.acme, "audit.sink_dead_lettered")
    assert dead.outcome == "failure" and dead.actor_label == "audit-stream" and dead.data["sink"] == "soc"
    assert latest(w.acme, "audit.sink_retried").actor_label == "admin@acme.test"
    assert latest(w.acme, "audit.sink_recovered").data["failures"] == 1


@scenario("audit.stream_gap")
def _stream_gap(w: World) -> None:
    from django.test import override_settings

    from audit.models import AuditSink
    from audit.streaming.delivery import deliver
    from tests.support.siem import SyslogReceiver

    receiver = SyslogReceiver().start()
    try:
        with schema_context(w.acme.schema_name), override_settings(OUTBOUND_ALLOW_LOOPBACK=True):
            sink = AuditSink.objects.create(
                name="late", kind="syslog", host="127.0.0.1", port=receiver.port, transport="tcp", cursor_seq=0
            )
            audit.record("tests", "tests.streamed")
            AuditSettings.objects.filter(pk=AuditSettings.load().pk).update(retention_days=1)
            archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
            deliver(sink.pk)
    finally:
        receiver.stop()
    gap = latest(w.acme, "audit.stream_gap")
    assert gap.outcome == "failure" and gap.data["first_missing"] == 1 and gap.data["archives"]


# --- SPIFFE workload identities ---------------------------------------------------------------------------------------


@scenario("workloads.svid_issued", "workloads.svid_issue_failed")
def _svid_issued(w: World) -> None:
    from authsec_site.lib import vault
    from workloads.models import Workload
    from workloads.services import SvidIssueError, issue_svid

    settings = w.request.getfixturevalue("settings")
    settings.SVID_DIR = w.request.getfixturevalue("tmp_path") / "svids"
    addr = settings.VAULT_ADDR
    with schema_context(w.acme.schema_name):
        workload = Workload.objects.create(name="coverage", spiffe_path="/coverage")
        issue_svid(workload, actor="tests")
        settings.VAULT_ADDR = "http://127.0.0.1:9"  # nothing listens there
        vault.reset_client()
        vault.forget_tenant_clients()
        try:
            with pytest.raises(SvidIssueError):
                issue_svid(workload, actor="tests")
        finally:
            settings.VAULT_ADDR = addr
            vault.reset_client()
            vault.forget_tenant_clients()
    issued = latest(w.acme, "workloads.svid_issued", target_id=str(workload.pk))
    assert issued.data["spiffe_id"] == "spiffe://acme.authsec.local/coverage"
    assert latest(w.acme, "workloads.svid_issue_failed", target_id=str(workload.pk)).outcome == "failure"


# --- the SDK runtime API: registered resource servers -----------------------------------------------------------------


@scenario(
    "oauth.resource_server_created",
    "oauth.resource_server_manifest_published",
    "oauth.resource_server_policy_changed",
    "oauth.resource_server_auth_failed",
    "oauth.resource_server_deleted",
)
def _resource_server(w: World) -> None:
    import base64

    from oauth import resource_servers
    from oauth.models import ResourceServer

    add = w.admin.post(
        "/t/acme/admin/oauth/resourceserver/add/",
        {
            "name": "Coverage RS",
            "resource_uri": "https://coverage.example.com/mcp",
            "is_active": "on",
            "introspection_client_secret": "c" * 43,
            "tools-TOTAL_FORMS": 0,
            "tools-INITIAL_FORMS": 0,
            "tools-MIN_NUM_FORMS": 0,
            "tools-MAX_NUM_FORMS": 1000,
        },
    )
    assert add.status_code == 302, add.content.decode()[-2000:]
    with schema_context(w.acme.schema_name):
        server = ResourceServer.objects.select_related("client").get(resource_uri="https://coverage.example.com/mcp")
        client_id = server.client.client_id
    url = f"/t/acme/oauth/authsec/resource-servers/{server.pk}/"
    auth = "Basic " + base64.b64encode(f"{client_id}:{'c' * 43}".encode()).decode()
    pushed = Client().put(
        url + "sdk-manifest", '{"tools": [{"name": "t1"}]}', "application/json", HTTP_AUTHORIZATION=auth
    )
    assert pushed.status_code == 200
    assert Client().get(url + "sdk-policy", HTTP_AUTHORIZATION=auth[:-4] + "AAA=").status_code == 401
    with schema_context(w.acme.schema_name):
        tool = server.tools.get(name="t1")
        resource_servers.map_tool(actor="tests", tool=tool, is_public=True, required_scopes=[])
    assert w.admin.post(f"/t/acme/admin/oauth/resourceserver/{server.pk}/delete/", {"post": "yes"}).status_code == 302
    target = str(server.pk)
    assert latest(w.acme, "oauth.resource_server_created", target_id=target).data["client_id"] == client_id
    assert latest(w.acme, "oauth.resource_server_manifest_published", target_id=target).data["added"] == ["t1"]
    assert latest(w.acme, "oauth.resource_server_policy_changed", target_id=target).data["tool"] == "t1"
    assert latest(w.acme, "oauth.resource_server_auth_failed", target_id=target).outcome == "deny"
    assert latest(w.acme, "oauth.resource_server_deleted", target_id=target).actor_label == "admin@acme.test"


# --- services (Vault-backed credentials) ---------------------------------------------------------------------------


@scenario(
    "service.created",
    "service.secret_created",
    "service.secret_replaced",
    "service.secret_rotated",
    "service.rotation_failed",
    "service.read",
    "service.deleted",
)
def _services(w: World) -> None:
    from accounts.models import User
    from services.models import Service
    from services.sdk import read_credentials
    from tests.support.services import session_for

    form = {
        "name": "Coverage service", "service_type": "api_key", "auth_type": "header", "base_url": "",
        "metadata": "{}", "is_enabled": "on", "rotation_policy": "on_demand", "rotation_interval_days": "30",
        "rotation_kind": "generated", "rotation_config": "{}", "keep_versions": "5", "api_key": "k" * 32,
    }  # fmt: skip
    assert w.admin.post("/t/acme/admin/services/service/add/", form).status_code == 302
    with schema_context(w.acme.schema_name):
        service = Service.objects.get(name="Coverage service")
    change = f"/t/acme/admin/services/service/{service.pk}/change/"
    assert w.admin.post(change, {**form, "api_key": "j" * 32}).status_code == 302
    listing = "/t/acme/admin/services/service/"
    w.admin.post(listing, {"action": "rotate_now", "_selected_action": [service.pk]})
    with schema_context(w.acme.schema_name):
        Service.objects.filter(pk=service.pk).update(rotation_kind="oauth2_refresh", service_type="oauth2")
    w.admin.post(listing, {"action": "rotate_now", "_selected_action": [service.pk]})
    with schema_context(w.acme.schema_name):
        reader = session_for(User.objects.get(email="admin@acme.test"))
        Service.objects.filter(pk=service.pk).update(rotation_kind="generated", service_type="api_key")
    read_credentials(reader, "Coverage service")
    assert w.admin.post(change.replace("change/", "delete/"), {"post": "yes"}).status_code == 302
    target = {"target_id": str(service.pk), "target_type": "services.service"}
    created = latest(w.acme, "service.created", **target)
    assert (created.data["service"], created.data["before"], created.data["after"]["name"]) == (
        "Coverage service",
        None,
        "Coverage service",
    )
    assert latest(w.acme, "service.secret_created", **target).data["vault_version"] == 1
    assert latest(w.acme, "service.secret_replaced", **target).data["keys_changed"] == ["api_key"]
    assert latest(w.acme, "service.secret_rotated", **target).data["rotation_kind"] == "generated"
    assert latest(w.acme, "service.rotation_failed", **target).outcome == "failure"
    read = latest(w.acme, "service.read", **target)
    assert (read.outcome, read.actor_label, read.data["vault_version"]) == ("allow", "admin@acme.test", 3)
    assert latest(w.acme, "service.deleted", **target).actor_label == "admin@acme.test"


# --- one write path (issue 20 point 5): the dashboards' writes through each app's service functions -----------------


def _inline_management(*prefixes: str) -> dict[str, int]:
    return {
        f"{prefix}-{key}": value
        for prefix in prefixes
        for key, value in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0), ("MIN_NUM_FORMS", 0), ("MAX_NUM_FORMS", 1000))
    }


def _platform_admin(email: str) -> Client:
    with schema_context("public"):
        User.objects.create_superuser(email, "platform-pass-123")
    client = Client()
    assert client.post("/admin/login/", {"username": email, "password": "platform-pass-123"}).status_code == 302
    return client


@scenario("accounts.user_created", "accounts.user_changed", "accounts.password_changed", "accounts.user_deleted")
def _users(w: World) -> None:
    inlines = _inline_management("role_bindings", "group_memberships")
    new = {"email": "cov.user@acme.test", "full_name": "Cov", "usable_password": "true"}
    new |= {"password1": "cov-pass-word-77", "password2": "cov-pass-word-77", **inlines}
    assert w.admin.post("/t/acme/admin/accounts/user/add/", new).status_code == 302
    created = latest(w.acme, "accounts.user_created", target_label="cov.user@acme.test")
    pk = created.target_id
    page = f"/t/acme/admin/accounts/user/{pk}/"
    changed_form = {"email": "cov.user@acme.test", "full_name": "Cov", "is_active": "on", "is_staff": "on"}
    response = w.admin.post(page + "change/", {**changed_form, "roles": ["auditor"], **inlines})
    assert response.status_code == 302
    password = {"usable_password": "true", "password1": "cov-pass-word-88", "password2": "cov-pass-word-88"}
    assert w.admin.post(page + "password/", password).status_code == 302
    assert w.admin.post(page + "delete/", {"post": "yes"}).status_code == 302
    assert (created.actor_label, created.data["before"], created.data["after"]["full_name"]) == (
        "admin@acme.test",
        None,
        "Cov",
    )
    changed = latest(w.acme, "accounts.user_changed", target_id=pk)
    assert changed.data["roles"] == {"before": [], "after": ["auditor"]}
    assert changed.data["changes"]["is_staff"] == {"before": False, "after": True}
    password_event = latest(w.acme, "accounts.password_changed", target_id=pk)
    assert password_event.data == {"user": "cov.user@acme.test", "usable": True}
    assert latest(w.acme, "accounts.user_deleted", target_id=pk).data["before"]["email"] == "cov.user@acme.test"


@scenario(
    "accounts.permission_group_created",
    "accounts.permission_group_changed",
    "accounts.permission_group_deleted",
    "tenant.renamed",
)
def _platform_admin_writes(w: World) -> None:
    from django.contrib.auth.models import Group as DjangoGroup

    from tests.support.admin_form import AdminForm

    root = _platform_admin("cov.root@platform.test")
    assert root.post("/admin/auth/group/add/", {"name": "Cov group"}).status_code == 302
    with schema_context("public"):
        group = DjangoGroup.objects.get(name="Cov group")
    assert root.post(f"/admin/auth/group/{group.pk}/change/", {"name": "Cov group 2"}).status_code == 302
    assert root.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 302
    target = {"target_id": str(group.pk)}
    assert latest(None, "accounts.permission_group_created", **target).data["after"]["name"] == "Cov group"
    changed = latest(None, "accounts.permission_group_changed", **target)
    assert changed.data["changes"] == {"name": {"before": "Cov group", "after": "Cov group 2"}}
    assert latest(None, "accounts.permission_group_deleted", **target).actor_label == "cov.root@platform.test"

    page = f"/admin/tenants/tenant/{w.globex.pk}/change/"
    form = AdminForm(root.get(page).content.decode())
    form.set("name", "Globex Renamed")
    assert root.post(page, form.data()).status_code == 302
    renamed = latest(None, "tenant.renamed", target_id=str(w.globex.pk))
    assert renamed.data == {"before": "Globex Corporation", "after": "Globex Renamed"}


@scenario("oauth.client_created", "oauth.client_changed", "oauth.client_deleted")
def _oauth_clients(w: World) -> None:
    from oauth.models import Client as OAuthClient

    form = {
        "client_id": "cov-dashboard-client", "name": "Cov client", "client_type": OAuthClient.CLIENT_PUBLIC,
        "authorization_grant_type": OAuthClient.GRANT_AUTHORIZATION_CODE, "redirect_uris": "https://cov.example.com/cb",
        "post_logout_redirect_uris": "", "allowed_origins": "", "client_secret": "", "algorithm": "RS256",
        "status": "active", "registration_source": "manual", "description": "",
    }  # fmt: skip
    assert w.admin.post("/t/acme/admin/oauth/client/add/", form).status_code == 302
    with schema_context(w.acme.schema_name):
        pk = OAuthClient.objects.get(client_id="cov-dashboard-client").pk
    page = f"/t/acme/admin/oauth/client/{pk}/"
    assert w.admin.post(page + "change/", {**form, "name": "Cov client 2"}).status_code == 302
    assert w.admin.post(page + "delete/", {"post": "yes"}).status_code == 302
    target = {"target_id": str(pk)}
    assert latest(w.acme, "oauth.client_created", **target).data["client_id"] == "cov-dashboard-client"
    changed = latest(w.acme, "oauth.client_changed", **target)
    assert changed.data["changes"] == {"name": {"before": "Cov client", "after": "Cov client 2"}}
    assert latest(w.acme, "oauth.client_deleted", **target).data["after"] is None


@scenario("oauth.provider_settings_created", "oauth.provider_settings_changed")
def _provider_settings(w: World) -> None:
    from oauth.client_services import set_dynamic_registration
    from oauth.models import ProviderSettings

    with schema_context(w.acme.schema_name):
        ProviderSettings.objects.all().delete()  # (rolled back) as a tenant before its first settings page
    form = {"dynamic_registration": "approval", "allow_cimd": "on"}
    assert w.admin.post("/t/acme/admin/oauth/providersettings/add/", form).status_code == 302
    with schema_context(w.acme.schema_name):
        set_dynamic_registration(actor="tests", mode="closed")
    created = latest(w.acme, "oauth.provider_settings_created")
    assert (created.actor_label, created.data["after"]["dynamic_registration"]) == ("admin@acme.test", "approval")
    changed = latest(w.acme, "oauth.provider_settings_changed")
    assert changed.data["changes"] == {"dynamic_registration": {"before": "approval", "after": "closed"}}


@scenario("oauth.upstream_created", "oauth.upstream_changed", "oauth.upstream_deleted")
def _upstream_providers(w: World) -> None:
    from authsec_site.lib import vault
    from oauth.models import UpstreamProvider

    secret = "cov-upstream-secret-0123456789"
    form = {
        "name": "Cov IdP", "slug": "cov-idp", "issuer": "https://idp.example.com", "client_id": "cov",
        "client_secret": secret, "scopes": "openid email", "is_enabled": "on", "allowed_email_domains": "",
    }  # fmt: skip
    assert w.admin.post("/t/acme/admin/oauth/upstreamprovider/add/", form).status_code == 302
    with schema_context(w.acme.schema_name):
        provider = UpstreamProvider.objects.get(slug="cov-idp")
    page = f"/t/acme/admin/oauth/upstreamprovider/{provider.pk}/"
    edit = {key: value for key, value in form.items() if key != "slug"}
    assert w.admin.post(page + "change/", {**edit, "client_secret": "", "name": "Cov IdP 2"}).status_code == 302
    assert w.admin.post(page + "delete/", {"post": "yes"}).status_code == 302
    vault.kv_delete_all(provider.vault_path)  # the on-commit delete does not run in the test's transaction
    target = {"target_id": str(provider.pk)}
    created = latest(w.acme, "oauth.upstream_created", **target)
    assert (created.data["secret_changed"], created.data["after"]["slug"]) == (True, "cov-idp")
    assert secret not in json.dumps(created.data)
    changed = latest(w.acme, "oauth.upstream_changed", **target)
    assert changed.data["changes"] == {"name": {"before": "Cov IdP", "after": "Cov IdP 2"}}
    assert changed.data["secret_changed"] is False
    assert latest(w.acme, "oauth.upstream_deleted", **target).actor_label == "admin@acme.test"


@scenario("oauth.resource_server_changed", "service.changed", "audit.settings_changed")
def _settings_pages(w: World) -> None:
    from oauth import resource_servers
    from tests.support.admin_form import AdminForm
    from tests.support.services import make_service

    with schema_context(w.acme.schema_name):
        server, _secret = resource_servers.create_resource_server(
            actor="tests", name="Cov RS 2", resource_uri="https://cov2.example.com/mcp"
        )
        service = make_service({"api_key": "k" * 32}, service_type="api_key", name="Cov service 2")
        settings_pk = AuditSettings.load().pk
    page = f"/t/acme/admin/oauth/resourceserver/{server.pk}/change/"
    form = AdminForm(w.admin.get(page).content.decode())
    form.set("name", "Cov RS 3")
    assert w.admin.post(page, form.data()).status_code == 302
    page = f"/t/acme/admin/services/service/{service.pk}/change/"
    form = AdminForm(w.admin.get(page).content.decode())
    form.set("description", "changed")
    assert w.admin.post(page, form.data()).status_code == 302
    page = f"/t/acme/admin/audit/auditsettings/{settings_pk}/change/"
    assert w.admin.post(page, {"retention_days": "30"}).status_code == 302
    server_changed = latest(w.acme, "oauth.resource_server_changed", target_id=str(server.pk))
    assert server_changed.data["changes"]["name"] == {"before": "Cov RS 2", "after": "Cov RS 3"}
    assert server_changed.data["changes"]["generation"] == {"before": 1, "after": 2}
    service_changed = latest(w.acme, "service.changed", target_id=str(service.pk), target_type="services.service")
    assert service_changed.data["changes"] == {"description": {"before": "", "after": "changed"}}
    assert latest(w.acme, "audit.settings_changed").data["changes"]["retention_days"]["after"] == 30


@scenario("workloads.workload_created", "workloads.workload_changed", "workloads.workload_deleted")
def _workloads(w: World) -> None:
    from workloads.models import Workload

    form = {"name": "cov-wl", "spiffe_path": "/cov/wl", "description": "", "ttl_seconds": 600, "is_enabled": "on"}
    assert w.admin.post("/t/acme/admin/workloads/workload/add/", form).status_code == 302
    with schema_context(w.acme.schema_name):
        pk = Workload.objects.get(name="cov-wl").pk
    page = f"/t/acme/admin/workloads/workload/{pk}/"
    assert w.admin.post(page + "change/", {**form, "ttl_seconds": 900}).status_code == 302
    assert w.admin.post(page + "delete/", {"post": "yes"}).status_code == 302
    target = {"target_id": str(pk)}
    assert latest(w.acme, "workloads.workload_created", **target).data["after"]["spiffe_path"] == "/cov/wl"
    changed = latest(w.acme, "workloads.workload_changed", **target)
    assert changed.data["changes"] == {"ttl_seconds": {"before": 600, "after": 900}}
    assert latest(w.acme, "workloads.workload_deleted", **target).data["before"]["name"] == "cov-wl"


@scenario("mcp.auth_session_revoked")
def _auth_session_revoked(w: World) -> None:
    from mcp_endpoint.models import AuthSession
    from rbac.models import Application

    w.request.getfixturevalue("demo_users")
    with schema_context(w.acme.schema_name):
        session = AuthSession(
            application=Application.objects.get(slug="demo"), code_verifier="v" * 43, status="authenticated"
        )
        session.save()
    assert w.admin.post(f"/t/acme/admin/tokens/session/{session.state}/revoke/").status_code == 302
    event = latest(w.acme, "mcp.auth_session_revoked")
    assert event.actor_label == "admin@acme.test"
    assert event.data == {"application": "demo", "session": session.state[:16]}


@scenario("oauth.ciba_token_issued", "oauth.ciba_client_auth_failed")
def _ciba(w: World) -> None:
    w.request.getfixturevalue("demo_users")
    secret = secrets.token_urlsafe(32)
    with schema_context(w.acme.schema_name):
        ciba = OAuthClientFactory(machine=True, name="Voice agent", client_secret=secret, is_ciba_client=True)
        alice = User.objects.get(email="alice@acme.test")
    base = "/t/acme/oauth/authsec/uflow/auth/workspace/ciba"
    auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{ciba.client_id}:{secret}".encode()).decode()}
    refused = Client().post(f"{base}/initiate", {"email": "alice@acme.test"}, content_type="application/json")
    assert refused.status_code == 401
    failed = latest(w.acme, "oauth.ciba_client_auth_failed")
    assert (failed.outcome, failed.data["reason"]) == ("deny", "no credentials")
    started = Client().post(f"{base}/initiate", {"email": "alice@acme.test"}, content_type="application/json", **auth)
    auth_req_id = started.json()["auth_req_id"]
    with schema_context(w.acme.schema_name):
        approvals.decide(approvals.get_request(auth_req_id), alice, True)
    body = {"auth_req_id": auth_req_id}
    assert Client().post(f"{base}/token", body, content_type="application/json", **auth).status_code == 200
    issued = latest(w.acme, "oauth.ciba_token_issued")
    assert (issued.actor_label, issued.data["grant"], issued.data["auth_req_id"]) == (
        "alice@acme.test",
        "ciba",
        auth_req_id,
    )


@scenario(
    "accounts.mfa_totp_enrolled",
    "accounts.mfa_totp_removed",
    "accounts.mfa_recovery_codes_generated",
    "accounts.mfa_verified",
    "accounts.mfa_verification_failed",
    "accounts.mfa_passkey_added",
    "accounts.mfa_passkey_removed",
    "accounts.mfa_factors_reset",
    "accounts.mfa_settings_created",
    "accounts.mfa_settings_changed",
)
def _second_factors(w: World) -> None:
    from accounts import services as account_services
    from accounts.models import MfaSettings, Passkey
    from tests.support.mfa import code, enroll_totp, sign_in

    with schema_context(w.acme.schema_name):
        user = UserFactory(email="factors@acme.test")
        client = sign_in("acme", "factors@acme.test")
        key, _ = enroll_totp(client, "acme")  # the security page: TOTP, then recovery codes
        assert latest(w.acme, "accounts.mfa_totp_enrolled").data == {"user": "factors@acme.test"}
        assert latest(w.acme, "accounts.mfa_recovery_codes_generated").data["count"] == 10
        verify = "/t/acme/account/verify/"
        assert client.post(verify, {"method": "totp", "code": code(key, 1)}).status_code == 302
        assert latest(w.acme, "accounts.mfa_verified").data["method"] == "totp"
        assert client.post(verify, {"method": "recovery", "code": "AAAA-BBBB-CCCC-DDDD"}).status_code == 400
        assert latest(w.acme, "accounts.mfa_verification_failed").outcome == "failure"
        assert client.post("/t/acme/account/security/", {"action": "totp_remove"}).status_code == 302
        assert latest(w.acme, "accounts.mfa_totp_removed").actor_label == "factors@acme.test"
        # Passkeys come from a browser ceremony (tests/browser/test_passkeys.py); here the service it ends in.
        passkey = account_services.add_passkey(
            actor=user,
            user=user,
            name="Key",
            credential_id=b"id",
            credential_data=b"d",
            rp_id="localhost",
            sign_count=0,
        )
        assert latest(w.acme, "accounts.mfa_passkey_added").data["rp_id"] == "localhost"
        account_services.remove_passkey(actor=user, passkey=Passkey.objects.get(pk=passkey.pk))
        assert latest(w.acme, "accounts.mfa_passkey_removed").data["name"] == "Key"
    listing = "/t/acme/admin/accounts/user/"
    assert w.admin.post(listing, {"action": "reset_second_factors", "_selected_action": [user.pk]}).status_code == 302
    assert latest(w.acme, "accounts.mfa_factors_reset").data["recovery_codes"] == 10
    with schema_context(w.acme.schema_name):
        MfaSettings.objects.all().delete()
    added = w.admin.post("/t/acme/admin/accounts/mfasettings/add/", {})
    assert added.status_code == 302
    assert latest(w.acme, "accounts.mfa_settings_created").actor_label == "admin@acme.test"
    with schema_context(w.acme.schema_name):
        row = MfaSettings.objects.get()
    changed = w.admin.post(f"/t/acme/admin/accounts/mfasettings/{row.pk}/change/", {"require_for_staff": "on"})
    assert changed.status_code == 302
    assert latest(w.acme, "accounts.mfa_settings_changed").data["changes"] == {
        "require_for_staff": {"before": False, "after": True}
    }
    # From now on this admin's session (no factor verified) is sent to set one up.
    assert w.admin.get("/t/acme/admin/").status_code == 302


# --- the tests --------------------------------------------------------------------------------------------------------


# --- approvals ------------------------------------------------------------------------------------------------------


@scenario(
    "approval.requested",
    "approval.notified",
    "approval.approval_recorded",
    "approval.approved",
    "approval.denied",
    "approval.expired",
    "approval.used",
)
def _approvals(w: World) -> None:
    from approvals import notify
    from approvals import services as approvals
    from approvals.models import ApprovalRequest
    from rbac.models import ToolPolicy

    with schema_context(w.acme.schema_name):
        role = RoleFactory(name="coverage-approver")
        caller, ann, ben = (UserFactory(email=f"{n}-cov@acme.test") for n in ("caller", "ann", "ben"))
        for user in (ann, ben):
            rbac.grant_role(actor="tests", role=role, user=user)
        policy = ToolPolicy.objects.create(
            application=ApplicationFactory(slug="cov-ops"),
            tool_name="deploy",
            approval="others_n",
            approval_count=2,
            approval_role="coverage-approver",
        )
        first = approvals.request_for_policy(policy=policy, caller=caller, arguments={"v": 1})
        assert latest(w.acme, "approval.requested").data["approval_id"] == str(first.pk)
        notify.notify_request(str(first.pk))
        assert latest(w.acme, "approval.notified").data["channels"]["email"]["sent"] == 1
        approvals.decide(first, ann, True)
        assert latest(w.acme, "approval.approval_recorded").data["approvals"] == 1
        approvals.decide(first, ben, True)
        assert latest(w.acme, "approval.approved").data["approvers"] == ["ann-cov@acme.test", "ben-cov@acme.test"]
        used = approvals.consume(
            caller=caller, application=policy.application, tool_name="deploy", args_hash=first.args_hash, used_by="r1"
        )
        assert used is not None and latest(w.acme, "approval.used").data["used_by"] == "r1"
        second = approvals.request_for_policy(policy=policy, caller=caller, arguments={"v": 2})
        approvals.decide(second, ann, False)
        assert latest(w.acme, "approval.denied").actor_label == "ann-cov@acme.test"
        third = approvals.request_for_policy(policy=policy, caller=caller, arguments={"v": 3})
        ApprovalRequest.objects.filter(pk=third.pk).update(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        assert approvals.expire_due() == 1
        assert latest(w.acme, "approval.expired").data["approval_id"] == str(third.pk)


@scenario("approval.settings_changed")
def _approval_settings(w: World) -> None:
    page = "/t/acme/admin/approvals/approvalsettings/1/change/"
    assert w.admin.get("/t/acme/admin/approvals/approvalsettings/").status_code == 302
    response = w.admin.post(page, {"email_enabled": "on", "webhook_url": "", "webhook_secret": "x" * 40})
    assert response.status_code == 302, response.content[:2000]
    event = latest(w.acme, "approval.settings_changed")
    assert event.actor_label == "admin@acme.test" and event.data["webhook_secret_version"] >= 1
    assert "x" * 40 not in json.dumps(event.data)


def test_every_catalogued_kind_of_event_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(EVENT_KINDS)


@pytest.mark.parametrize(
    "run", sorted(set(SCENARIOS.values()), key=lambda func: func.__name__), ids=lambda func: func.__name__.strip("_")
)
def test_the_feature_writes_its_events(
    run: Callable[[World], None], acme: Tenant, globex: Tenant, archive_dir, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    admin = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    run(World(acme=acme, globex=globex, admin=admin, request=request))
