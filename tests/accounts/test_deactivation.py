"""Issue 18 finding 4: a deactivated or deleted user's tokens stop working everywhere, at once.

Deactivating or deleting (service function, dashboard, a plain save) revokes every access, refresh and ID token,
every authorization code and every MCP login session of the user in the same transaction, audits the counts,
and feeds the MCP endpoint's deny-list after commit. A token whose user became inactive some other way (a bulk
``update``) is still refused where it is verified. The MCP endpoint itself: tests/oauth/test_jwt_matrix.py."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_id_token_model, get_refresh_token_model

from accounts.models import User
from accounts.services import deactivate_user, delete_user
from audit.models import AuditEvent
from mcp_endpoint.bearer import REVOKED_PREFIX
from mcp_endpoint.login import principal_of
from mcp_endpoint.models import AuthSession
from rbac.models import Application
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.oauth import (
    bearer,
    exchange,
    get_code,
    introspect,
    login,
    make_resource_server,
    pkce,
    token_request,
    userinfo,
)

pytestmark = pytest.mark.django_db

ALICE = "alice@acme.test"


def _api(token: str) -> Any:
    return HttpClient().get("/t/acme/api/roles/", **bearer(token))


def _refresh(client_id: str, refresh_token: str) -> Any:
    return token_request(grant_type="refresh_token", client_id=client_id, refresh_token=refresh_token)


def _held(user: User) -> dict[str, int]:
    return {
        "access": get_access_token_model().objects.filter(user=user).count(),
        "refresh": get_refresh_token_model().objects.filter(user=user).count(),
        "id": get_id_token_model().objects.filter(user=user).count(),
        "grants": get_grant_model().objects.filter(user=user).count(),
        "sessions": AuthSession.objects.filter(user=user, status=AuthSession.Status.AUTHENTICATED).count(),
    }


_SINCE: dict[str, int] = {"id": 0}


@pytest.fixture(autouse=True)
def _audit_mark(in_acme) -> None:  # type: ignore[no-untyped-def]
    """Live-server tests elsewhere commit audit events for the same demo users (the log is append-only):
    each test here reads only the events written after it started."""
    _SINCE["id"] = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _revocations():  # type: ignore[no-untyped-def]
    return AuditEvent.objects.filter(action="accounts.user_access_revoked", data__user=ALICE, pk__gt=_SINCE["id"])


@pytest.fixture
def alice_everything(demo_users, clients) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """alice with a token set (access, refresh, ID; no resource, so userinfo takes it), an unexchanged
    authorization code, and an authenticated MCP login session."""
    alice = User.objects.get(email=ALICE)
    browser = login(ALICE)
    verifier, challenge = pkce()
    code, _ = get_code(browser, clients.public, challenge, scope="openid email read offline_access", resource=None)
    tokens = exchange(clients.public, code, verifier)
    assert tokens.status_code == 200, tokens.content
    _verifier, challenge = pkce()
    unused, _ = get_code(browser, clients.public, challenge)
    assert unused
    app = Application.objects.get(slug="demo")
    session = AuthSession(application=app, code_verifier="v" * 43, status=AuthSession.Status.AUTHENTICATED)
    session.user = alice
    session.authenticated_at = timezone.now()
    session.save()
    return {"user": User.objects.get(pk=alice.pk), "session": session, **tokens.json()}


def test_deactivating_a_user_revokes_everything_they_hold(
    alice_everything, clients, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    alice = alice_everything["user"]
    assert _held(alice) == {"access": 1, "refresh": 1, "id": 1, "grants": 1, "sessions": 1}
    admin = User.objects.get(email="admin@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        deactivate_user(actor=admin, user=alice)
    assert _held(alice) == {"access": 0, "refresh": 0, "id": 0, "grants": 0, "sessions": 0}
    event = _revocations().get()
    assert (event.actor_label, event.target_id) == ("admin@acme.test", str(alice.pk))
    assert event.data == {
        "reason": "deactivated",
        "user": ALICE,
        "access_token_count": 1,
        "refresh_token_count": 1,
        "id_token_count": 1,
        "grant_count": 1,
        "mcp_session_count": 1,
    }
    # The MCP endpoint's deny-list got the access token (after commit), as for any other revocation.
    digest = hashlib.sha256(alice_everything["access_token"].encode()).hexdigest()
    assert cache.get(REVOKED_PREFIX + digest)


def test_a_deactivated_users_tokens_are_refused_at_every_endpoint(alice_everything, clients) -> None:  # type: ignore[no-untyped-def]
    access, refresh = alice_everything["access_token"], alice_everything["refresh_token"]
    rs = make_resource_server()
    assert userinfo(access).status_code == 200  # positive control
    assert introspect(access, rs.client.client_id, rs.secret).json()["active"] is True
    deactivate_user(actor="tests", user=alice_everything["user"])
    response = userinfo(access)
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]
    assert introspect(access, rs.client.client_id, rs.secret).json() == {"active": False}
    answer = _refresh(clients.public.client_id, refresh)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert _api(access).status_code == 401
    session = AuthSession.objects.get(pk=alice_everything["session"].pk)
    assert session.status == AuthSession.Status.LOGGED_OUT


def test_deleting_a_user_revokes_and_audits(alice_everything, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    alice = alice_everything["user"]
    with django_capture_on_commit_callbacks(execute=True):
        delete_user(actor="tests", user=alice)
    event = _revocations().get()
    assert (event.actor_label, event.data["reason"], event.data["access_token_count"]) == ("tests", "deleted", 1)
    assert event.data["mcp_session_count"] == 1
    digest = hashlib.sha256(alice_everything["access_token"].encode()).hexdigest()
    assert cache.get(REVOKED_PREFIX + digest)
    assert userinfo(alice_everything["access_token"]).status_code == 401


def test_a_plain_save_deactivating_a_user_revokes_too(alice_everything) -> None:  # type: ignore[no-untyped-def]
    alice = alice_everything["user"]
    alice.is_active = False
    alice.save()  # the shell door: no service function, the system is the actor
    assert _held(alice)["access"] == 0
    assert _revocations().get().actor_label == "system"
    alice.full_name = "Alice"
    alice.save()  # already inactive: nothing more to revoke, no second event
    assert _revocations().count() == 1


def test_deactivating_a_user_in_the_dashboard_names_the_admin(alice_everything, acme) -> None:  # type: ignore[no-untyped-def]
    admin = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    alice = alice_everything["user"]
    url = f"/t/acme/admin/accounts/user/{alice.pk}/change/"
    form = {"email": ALICE, "full_name": "Alice"}  # is_active (like is_staff) unticked
    for inline in admin.get(url).context["inline_admin_formsets"]:  # the RBAC inlines, posted back unchanged
        formset = inline.formset
        form.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        for row in formset.forms:
            form.update({f"{row.prefix}-{name}": row[name].value() or "" for name in row.fields})
    response = admin.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert User.objects.get(pk=alice.pk).is_active is False
    event = _revocations().get()
    assert (event.actor_label, event.data["reason"], event.data["access_token_count"]) == (
        "admin@acme.test",
        "deactivated",
        1,
    )
    # The page's own change is one event of the same transaction, with the same actor.
    changed = AuditEvent.objects.get(action="accounts.user_changed", target_id=str(alice.pk), pk__gt=_SINCE["id"])
    assert (changed.actor_label, changed.data["changes"]["is_active"]) == (
        "admin@acme.test",
        {"before": True, "after": False},
    )
    assert userinfo(alice_everything["access_token"]).status_code == 401


def test_tokens_of_a_user_made_inactive_behind_the_signals_are_refused(alice_everything, clients) -> None:  # type: ignore[no-untyped-def]
    # A bulk update sends no signal, so nothing is revoked: the check where a token is verified still refuses it.
    User.objects.filter(pk=alice_everything["user"].pk).update(is_active=False)
    access = alice_everything["access_token"]
    assert get_access_token_model().objects.filter(user=alice_everything["user"]).count() == 1
    response = userinfo(access)
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]
    assert _api(access).status_code == 401
    answer = _refresh(clients.public.client_id, alice_everything["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    rs = make_resource_server()
    assert introspect(access, rs.client.client_id, rs.secret).json() == {"active": False}


def test_a_login_session_of_an_inactive_user_gives_no_principal(alice_everything) -> None:  # type: ignore[no-untyped-def]
    session = alice_everything["session"]
    assert principal_of(session, "acme") is not None
    User.objects.filter(pk=alice_everything["user"].pk).update(is_active=False)
    assert principal_of(session, "acme") is None
