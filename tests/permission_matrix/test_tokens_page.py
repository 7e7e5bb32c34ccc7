"""The callers of the dashboard's Tokens & sessions page (/t/<tenant>/admin/tokens/), its confirmation page and its
revoke POST: anonymous, an end user (signed in, not staff), an auditor, staff with exactly the permissions of one
kind, the tenant's admin, and another tenant's admin. Viewing a kind needs its view permission; revoking it the
permission its dashboard action needed (access and refresh tokens: change; MCP login sessions: delete)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.models import User
from mcp_endpoint.models import AuthSession
from tenants.models import Tenant
from tests.factories import ApplicationFactory, OAuthClientFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in
from tests.support.matrix import grant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

PAGE = "/t/acme/admin/tokens/"
HOLDER = "tokens-holder@acme.test"


def _rows(acme: Tenant) -> dict[str, Any]:
    """One live row of each kind in acme, held by HOLDER."""
    with schema_context(acme.schema_name):
        holder = UserFactory(email=HOLDER)
        client = OAuthClientFactory(name="Matrix client")
        expires = timezone.now() + timedelta(hours=1)
        access = AccessToken.objects.create(
            user=holder, application=client, token=secrets.token_urlsafe(24), expires=expires, scope="read"
        )
        refresh = RefreshToken.objects.create(user=holder, application=client, token=secrets.token_urlsafe(24))
        session = AuthSession(
            application=ApplicationFactory(slug="tokens-matrix"), code_verifier="v" * 43, expires_at=expires
        )
        session.user, session.status = holder, AuthSession.Status.AUTHENTICATED
        session.save()
    return {"access": access, "refresh": refresh, "session": session}


def _revoke_url(kind: str, row: Any) -> str:
    return f"{PAGE}{kind}/{row.state if kind == 'session' else row.pk}/revoke/"


def _live(acme: Tenant, rows: dict[str, Any]) -> dict[str, bool]:
    with schema_context(acme.schema_name):
        return {
            "access": AccessToken.objects.filter(pk=rows["access"].pk).exists(),
            "refresh": RefreshToken.objects.filter(pk=rows["refresh"].pk, revoked__isnull=True).exists(),
            "session": AuthSession.objects.get(pk=rows["session"].pk).status == AuthSession.Status.AUTHENTICATED,
        }


def _every_url(rows: dict[str, Any]) -> list[tuple[str, str]]:
    urls = [("get", PAGE)]
    for kind, row in rows.items():
        urls += [("get", _revoke_url(kind, row)), ("post", _revoke_url(kind, row))]
    return urls


def _to_login(response: Any, what: str) -> None:
    assert response.status_code == 302, what
    assert response["Location"].startswith("/t/acme/admin/login/"), (what, response["Location"])


def test_anonymous_goes_to_the_login_page(acme: Tenant) -> None:
    rows = _rows(acme)
    for method, url in _every_url(rows):
        _to_login(getattr(Client(), method)(url), url)
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}


def test_an_end_user_is_not_let_in(acme: Tenant) -> None:
    rows = _rows(acme)
    with schema_context(acme.schema_name):
        user = UserFactory(email="tokens-end-user@acme.test")
    grant(acme, user, ["oauth2_provider.view_accesstoken", "oauth2_provider.change_accesstoken"])  # not staff
    client = Client()
    response = client.post("/t/acme/accounts/login/", {"username": user.email, "password": FACTORY_PASSWORD})
    assert response.status_code == 302
    for method, url in _every_url(rows):
        _to_login(getattr(client, method)(url), url)
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}


def test_an_auditor_is_refused(acme: Tenant) -> None:
    rows = _rows(acme)
    with schema_context(acme.schema_name):
        UserFactory(email="tokens-auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    client = log_in(acme, "tokens-auditor@acme.test", FACTORY_PASSWORD)
    for method, url in _every_url(rows):
        assert getattr(client, method)(url).status_code == 403, url
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}


KIND_PERMISSIONS = {
    "access": ("oauth2_provider.view_accesstoken", "oauth2_provider.change_accesstoken"),
    "refresh": ("oauth2_provider.view_refreshtoken", "oauth2_provider.change_refreshtoken"),
    "session": ("mcp_endpoint.view_authsession", "mcp_endpoint.delete_authsession"),
}


@pytest.mark.parametrize("kind", KIND_PERMISSIONS)
def test_staff_see_and_revoke_exactly_the_kinds_they_may(kind: str, acme: Tenant) -> None:
    rows = _rows(acme)
    view, revoke = KIND_PERMISSIONS[kind]
    with schema_context(acme.schema_name):
        staff = UserFactory(email=f"tokens-staff-{kind}@acme.test", is_staff=True)
    client = log_in(acme, staff.email, FACTORY_PASSWORD)
    assert client.get(PAGE).status_code == 403  # staff without any of the permissions

    grant(acme, staff, [view])
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    shown = {part.split('"', 1)[0] for part in html.split('class="token-row" data-kind="')[1:]}
    assert shown == {kind}
    assert "revoke-link" not in html  # seeing is not revoking
    others = [other for other in KIND_PERMISSIONS if other != kind]
    for other in others:
        assert client.get(PAGE, {"kind": other}).status_code == 403
        assert client.get(_revoke_url(other, rows[other])).status_code == 403
    assert client.get(_revoke_url(kind, rows[kind])).status_code == 403
    assert client.post(_revoke_url(kind, rows[kind])).status_code == 403
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}

    grant(acme, staff, [revoke])
    assert "revoke-link" in client.get(PAGE).content.decode()
    assert client.get(_revoke_url(kind, rows[kind])).status_code == 200
    for other in others:
        assert client.post(_revoke_url(other, rows[other])).status_code == 403
    assert client.post(_revoke_url(kind, rows[kind])).status_code == 302
    live = _live(acme, rows)
    assert live[kind] is False
    if kind == "session":
        assert live["access"] and live["refresh"]
    else:
        assert live["session"]


def test_the_tenant_admin_sees_every_kind_escaped_and_revokes(acme: Tenant) -> None:
    rows = _rows(acme)
    with schema_context(acme.schema_name):
        User.objects.filter(email=HOLDER).update(email="<b>x</b>@acme.test")
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    html = client.get(PAGE).content.decode()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;@acme.test" in html
    for kind, row in rows.items():
        assert client.get(_revoke_url(kind, row)).status_code == 200
        assert client.post(_revoke_url(kind, row)).status_code == 302
    assert _live(acme, rows) == {"access": False, "refresh": False, "session": False}


def test_another_tenants_admin_goes_to_the_login_page_and_changes_nothing(acme: Tenant, globex: Tenant) -> None:
    rows = _rows(acme)
    client = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    for method, url in _every_url(rows):
        _to_login(getattr(client, method)(url), url)
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}
    # At their own dashboard (a fresh session: the test client, unlike a browser, sent theirs to acme's paths,
    # whose session middleware dropped it), acme's rows are neither listed nor found.
    own = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    theirs = own.get("/t/globex/admin/tokens/")
    assert theirs.status_code == 200 and HOLDER not in theirs.content.decode()
    for kind, row in rows.items():
        assert own.post(_revoke_url(kind, row).replace("/t/acme/", "/t/globex/")).status_code == 404
    assert _live(acme, rows) == {"access": True, "refresh": True, "session": True}
