"""The permission matrix of the self-service account page (/t/<tenant>/account/) and its revoke URLs: anonymous
callers go to the tenant's login; every signed-in user — end user, auditor, tenant admin — sees their own tools,
clients and activity and nobody else's, and can revoke only their own rows (another's id is a 404); another
tenant's admin has no session here."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from oauth.models import Consent
from tenants.models import Tenant
from tests.factories import OAuthClientFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.mfa import sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]
PAGE = "/t/acme/account/"


def _revoke_url(consent: Consent) -> str:
    return f"/t/acme/account/revoke/consent/{consent.pk}"


def _who(in_acme: Tenant) -> dict[str, tuple[Client, Consent]]:
    """Signed-in clients by email (end user, auditor, the tenant admin), each with a consent of their own."""
    UserFactory(email="end-user@acme.test")
    UserFactory(email="auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    clients = {
        "end-user@acme.test": sign_in("acme", "end-user@acme.test"),
        "auditor@acme.test": sign_in("acme", "auditor@acme.test"),
        "admin@acme.test": log_in(in_acme, "admin@acme.test", ADMIN_PASSWORD),
    }
    app = OAuthClientFactory(name="Matrix client")
    return {
        email: (client, Consent.objects.create(user=User.objects.get(email=email), client=app, scopes=["openid"]))
        for email, client in clients.items()
    }


def test_anonymous_is_sent_to_the_tenant_login(in_acme: Tenant) -> None:
    consent = Consent.objects.create(
        user=UserFactory(email="someone@acme.test"), client=OAuthClientFactory(), scopes=["openid"]
    )
    response = Client().get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/?next=")
    response = Client().post(_revoke_url(consent))
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/")
    consent.refresh_from_db()
    assert consent.revoked_at is None


def test_every_signed_in_user_sees_only_their_own_page(in_acme: Tenant) -> None:
    who = _who(in_acme)
    for email, (client, consent) in who.items():
        response = client.get(PAGE)
        assert response.status_code == 200, email
        html = response.content.decode()
        assert f'id="account-email">{email}<' in html, email
        assert html.count('class="consent"') == 1 and f'class="consent" data-id="{consent.pk}"' in html, email
        for other, _ in who.items():
            if other != email:
                assert other not in html.split('id="activity"', 1)[1], (email, other)


def test_each_user_revokes_only_their_own(in_acme: Tenant) -> None:
    who = _who(in_acme)
    end_user, own = who["end-user@acme.test"]
    for email in ("auditor@acme.test", "admin@acme.test"):
        assert end_user.post(_revoke_url(who[email][1])).status_code == 404, email
    admin, _ = who["admin@acme.test"]
    assert admin.post(_revoke_url(own)).status_code == 404  # not even the tenant admin, on this page
    assert Consent.objects.filter(revoked_at__isnull=False).count() == 0
    assert end_user.post(_revoke_url(own)).status_code == 302
    own.refresh_from_db()
    assert own.revoked_at is not None


def test_another_tenants_admin_has_no_session_here(acme: Tenant, globex: Tenant) -> None:
    outsider = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    assert b"admin@globex.test" in outsider.get("/t/globex/account/").content
    response = outsider.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/")
    response = outsider.post("/t/acme/account/revoke/consent/1")
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/")
