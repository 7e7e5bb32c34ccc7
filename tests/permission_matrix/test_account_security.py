"""The permission matrix of the second-factor pages (/t/<tenant>/account/…): anonymous callers are sent to the
tenant's login (pages) or get 401 (the passkey JSON endpoints); every signed-in user — end user, auditor, tenant
admin — reaches their own pages and nobody else's; another tenant's admin has no session here."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import mfa, services
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.mfa import enroll_totp, sign_in

pytestmark = pytest.mark.django_db

PAGES = ("/t/acme/account/security/", "/t/acme/account/verify/")
JSON_ENDPOINTS = (
    "/t/acme/account/passkeys/register/options",
    "/t/acme/account/passkeys/register",
    "/t/acme/account/passkeys/verify/options",
    "/t/acme/account/passkeys/verify",
)


def _who(acme: Tenant) -> dict[str, Client]:
    """Signed-in clients by email: an end user, an auditor (staff) and the tenant admin."""
    UserFactory(email="end-user@acme.test")
    UserFactory(email="auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    return {
        "end-user@acme.test": sign_in("acme", "end-user@acme.test"),
        "auditor@acme.test": sign_in("acme", "auditor@acme.test"),
        "admin@acme.test": log_in(acme, "admin@acme.test", ADMIN_PASSWORD),
    }


def test_anonymous_is_sent_to_the_tenant_login(in_acme: Tenant) -> None:
    anonymous = Client()
    for page in PAGES:
        response = anonymous.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/?next=")
    for endpoint in JSON_ENDPOINTS:
        response = anonymous.post(endpoint, "{}", content_type="application/json")
        assert response.status_code == 401, endpoint


def test_every_signed_in_user_reaches_their_own_pages(in_acme: Tenant) -> None:
    for who, client in _who(in_acme).items():
        for page in PAGES:
            response = client.get(page)
            assert response.status_code == 200, (who, page)
        # Their first passkey needs no step-up: the options name them, and this tenant's host.
        options = client.post(JSON_ENDPOINTS[0])
        assert options.status_code == 200, who
        assert options.json()["publicKey"]["user"]["name"] == who
        # GET is not a ceremony step.
        assert client.get(JSON_ENDPOINTS[0]).status_code == 405


def test_a_user_cannot_touch_another_users_passkey(in_acme: Tenant) -> None:
    owner = UserFactory(email="owner@acme.test")
    passkey = services.add_passkey(
        actor=owner, user=owner, name="Owner's", credential_id=b"x", credential_data=b"y", rp_id="testserver",
        sign_count=0,
    )  # fmt: skip
    other = sign_in("acme", UserFactory(email="other@acme.test").email)
    enroll_totp(other, "acme")  # verified: allowed to change their own factors
    response = other.post(PAGES[0], {"action": "passkey_remove", "passkey": passkey.pk})
    assert response.status_code == 302
    assert mfa.passkeys_of(owner) == [passkey]


def test_bad_input_is_a_4xx(in_acme: Tenant) -> None:
    client = sign_in("acme", UserFactory(email="fuzz@acme.test").email)
    assert client.post(PAGES[0], {"action": "nonsense"}).status_code == 400
    assert client.post(PAGES[0], {"action": "passkey_remove", "passkey": "1 OR 1=1"}).status_code == 400
    assert client.post(PAGES[1], {"method": "nonsense"}).status_code == 400
    assert client.post(JSON_ENDPOINTS[1], "not json", content_type="application/json").status_code == 400
    assert (
        client.post(JSON_ENDPOINTS[3], '{"credential": {"id": 1}}', content_type="application/json").status_code == 400
    )
    assert client.post(JSON_ENDPOINTS[3], "[]", content_type="application/json").status_code == 400


def test_another_tenants_admin_has_no_session_here(acme: Tenant, globex: Tenant) -> None:
    outsider = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    # Their own tenant's page is about their own user…
    assert b"admin@globex.test" in outsider.get("/t/globex/account/security/").content
    # …and here they are nobody (a browser would not even send the globex cookie, scoped to /t/globex/).
    for page in PAGES:
        response = outsider.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/")
    assert outsider.post(JSON_ENDPOINTS[2]).status_code == 401
