"""Second factors through the real pages: TOTP enrollment and step-up, replay and wrong codes refused, recovery
codes single use and stored hashed, the staff requirement, the admin reset, and factors that stay in their tenant."""

from __future__ import annotations

import hashlib
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts import mfa, services
from accounts.models import MfaSettings, RecoveryCode, User
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.mfa import code, enroll_totp, sign_in

pytestmark = pytest.mark.django_db

SECURITY = "/t/acme/account/security/"
VERIFY = "/t/acme/account/verify/"


def _events(action: str, **fields: object) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **fields).order_by("seq"))


def test_an_end_user_reaches_the_security_page_from_the_tenant_home(in_acme: Tenant) -> None:
    UserFactory(email="eve@acme.test")
    client = sign_in("acme", "eve@acme.test")
    home = client.get("/t/acme/")
    assert home.status_code == 200 and b'href="/t/acme/account/security/"' in home.content
    page = client.get(SECURITY)
    assert page.status_code == 200 and b"Set up an authenticator app" in page.content


def test_totp_enroll_then_step_up_then_replay_and_wrong_code_refused(in_acme: Tenant) -> None:
    user = UserFactory(email="tina@acme.test")
    client = sign_in("acme", "tina@acme.test")
    assert not mfa.has_factor(user)

    key, codes = enroll_totp(client, "acme")
    assert mfa.has_factor(user) and len(codes) == 10
    assert _events("accounts.mfa_totp_enrolled", target_id=str(user.pk))
    # The code that confirmed the set-up cannot be used again.
    assert mfa.verify_totp(user, code(key)) is False
    time.sleep(1.1)  # django-otp throttles after a failure (1 s, then doubling)

    # A new sign-in is not verified until a factor is given; the step-up page then goes on to `next`.
    client = sign_in("acme", "tina@acme.test")
    next_code = code(key, steps=1)
    wanted = "/t/acme/account/security/?from=test"
    page = client.get(VERIFY, {"next": wanted})
    assert page.status_code == 200 and b'id="verify-totp"' in page.content
    done = client.post(VERIFY, {"method": "totp", "code": next_code, "next": wanted})
    assert done.status_code == 302 and done["Location"] == wanted
    assert _events("accounts.mfa_verified", target_id=str(user.pk))[-1].data["method"] == "totp"

    # Replayed on another session: refused, and audited as a failure (with the refusal above).
    other = sign_in("acme", "tina@acme.test")
    replay = other.post(VERIFY, {"method": "totp", "code": next_code, "next": wanted})
    assert replay.status_code == 400 and b"not accepted" in replay.content
    wrong = f"{(int(code(key, 2)) + 1) % 1000000:06d}"
    assert wrong not in {code(key, s) for s in (-1, 0, 1, 2)}
    time.sleep(1.1)  # django-otp throttles after a failure (1 s, then doubling)
    assert other.post(VERIFY, {"method": "totp", "code": wrong}).status_code == 400
    failures = _events("accounts.mfa_verification_failed", target_id=str(user.pk))
    assert [(e.outcome, e.data["method"]) for e in failures] == [("failure", "totp")] * 3


def test_step_up_keeps_next_on_this_site(in_acme: Tenant) -> None:
    user = UserFactory(email="nils@acme.test")
    client = sign_in("acme", "nils@acme.test")
    key, _ = enroll_totp(client, "acme")
    request = RequestFactory().get("/")
    request.user = user
    assert "evil" not in mfa.step_up_url(request, "https://evil.example/steal")
    assert mfa.step_up_url(request, "/t/acme/approvals/7").endswith("?next=%2Ft%2Facme%2Fapprovals%2F7")
    done = client.post(VERIFY, {"method": "totp", "code": code(key, 1), "next": "https://evil.example/x"})
    assert done.status_code == 302 and done["Location"] == "/t/acme/account/security/"


def test_recovery_codes_are_single_use_and_stored_hashed(in_acme: Tenant) -> None:
    user = UserFactory(email="rita@acme.test")
    client = sign_in("acme", "rita@acme.test")
    _, codes = enroll_totp(client, "acme")
    # Shown once: the next visit shows none.
    assert b"recovery-code" not in client.get(SECURITY).content
    stored = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not any(c.replace("-", "") in "".join(stored) for c in codes)
    assert hashlib.sha256(codes[0].replace("-", "").encode()).hexdigest() in stored

    client = sign_in("acme", "rita@acme.test")
    used = client.post(VERIFY, {"method": "recovery", "code": codes[0].lower(), "next": SECURITY})
    assert used.status_code == 302
    assert _events("accounts.mfa_verified", target_id=str(user.pk))[-1].data == {
        "user": "rita@acme.test",
        "method": "recovery_code",
        "remaining": 9,
    }
    again = sign_in("acme", "rita@acme.test").post(VERIFY, {"method": "recovery", "code": codes[0]})
    assert again.status_code == 400
    assert mfa.recovery_codes_left(user) == 9


def test_changing_factors_needs_a_recent_verification(in_acme: Tenant) -> None:
    user = UserFactory(email="vic@acme.test")
    _, _ = enroll_totp(sign_in("acme", "vic@acme.test"), "acme")
    stolen = sign_in("acme", "vic@acme.test")  # a session with the password only
    response = stolen.post(SECURITY, {"action": "totp_remove"})
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert mfa.has_totp(user)
    options = stolen.post("/t/acme/account/passkeys/register/options")
    assert options.status_code == 403


def test_staff_must_verify_when_the_tenant_requires_it(in_acme: Tenant) -> None:
    admin = User.objects.get(email="admin@acme.test")
    services.save_mfa_settings(MfaSettings(require_for_staff=True), actor=admin)
    assert _events("accounts.mfa_settings_created")

    # No factor yet: the dashboard sends the admin to set one up, then back.
    client = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    first = client.get("/t/acme/admin/")
    assert first.status_code == 302 and first["Location"].startswith(SECURITY + "?next=")
    assert client.get("/t/acme/audit/").status_code == 302
    assert client.get("/t/acme/api/roles/").status_code == 403
    key, _ = enroll_totp(client, "acme")
    assert client.get("/t/acme/admin/").status_code == 200  # enrolling verified this session

    # The next dashboard login asks for the factor before the dashboard opens.
    client = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    asked = client.get("/t/acme/admin/rbac/role/")
    assert asked.status_code == 302 and asked["Location"].startswith(VERIFY)
    assert client.get(asked["Location"]).status_code == 200
    done = client.post(VERIFY, {"method": "totp", "code": code(key, 1), "next": "/t/acme/admin/rbac/role/"})
    assert done["Location"] == "/t/acme/admin/rbac/role/"
    assert client.get("/t/acme/admin/rbac/role/").status_code == 200
    assert client.get("/t/acme/api/roles/").status_code == 200

    # An end user (not staff) is not asked.
    UserFactory(email="enduser@acme.test")
    assert sign_in("acme", "enduser@acme.test").get("/t/acme/").status_code == 200


def test_staff_are_not_asked_when_the_setting_is_off(in_acme: Tenant) -> None:
    assert MfaSettings.current().require_for_staff is False
    client = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    assert client.get("/t/acme/admin/").status_code == 200


def test_an_admin_resets_a_users_factors_and_it_is_audited(in_acme: Tenant) -> None:
    user = UserFactory(email="lost@acme.test")
    enroll_totp(sign_in("acme", "lost@acme.test"), "acme")
    assert mfa.has_factor(user) and mfa.recovery_codes_left(user) == 10
    admin = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    page = admin.get(f"/t/acme/admin/accounts/user/{user.pk}/change/")
    assert "authenticator app, 10 unused recovery code(s)" in page.content.decode()
    response = admin.post(
        "/t/acme/admin/accounts/user/",
        {"action": "reset_second_factors", "_selected_action": [str(user.pk)]},
    )
    assert response.status_code == 302
    assert not mfa.has_factor(user) and mfa.recovery_codes_left(user) == 0
    event = _events("accounts.mfa_factors_reset", target_id=str(user.pk))[-1]
    assert (event.actor_label, event.data["totp"], event.data["recovery_codes"]) == ("admin@acme.test", 1, 10)


def test_an_acme_factor_never_verifies_in_globex(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        alice = UserFactory(email="twin@acme.test")
        key, codes = enroll_totp(sign_in("acme", "twin@acme.test"), "acme")
    with schema_context(globex.schema_name):
        twin = UserFactory(email="twin@acme.test")  # the same address, another tenant's user
        assert not mfa.has_factor(twin)
        assert mfa.verify_totp(twin, code(key, 1)) is False
        assert mfa.verify_recovery_code(twin, codes[0]) is False
        # acme's user object asked in globex: its id and email match no globex device.
        assert mfa.verify_totp(alice, code(key, 1)) is False
        assert not TOTPDevice.objects.exists()
    with schema_context(acme.schema_name):
        assert mfa.verify_totp(alice, code(key, 1)) is True  # still good where it belongs


def test_a_session_mark_of_acme_does_not_count_in_globex(acme: Tenant, globex: Tenant) -> None:
    request = RequestFactory().get("/")
    with schema_context(acme.schema_name):
        request.user = UserFactory(email="mark@acme.test")
        request.session = SessionStore()
        mfa.mark_verified(request)
        assert mfa.verified_recently(request)
        assert not mfa.verified_recently(request, within=-1)
    with schema_context(globex.schema_name):
        assert not mfa.verified_recently(request)


def test_fresh_factor_required_sends_to_login_then_step_up_then_lets_through(in_acme: Tenant) -> None:
    @mfa.fresh_factor_required(within=300)
    def approve(request):  # type: ignore[no-untyped-def]
        return HttpResponse("approved")

    user = UserFactory(email="approver@acme.test")
    request = RequestFactory().get("/t/acme/approvals/1")
    request.user = AnonymousUser()
    request.session = SessionStore()
    assert "/accounts/login/" in approve(request)["Location"]
    request.user = user
    assert "/account/verify/?next=" in approve(request)["Location"]
    mfa.mark_verified(request)
    assert approve(request).content == b"approved"
    request.session[mfa.SESSION_KEY]["at"] -= 301  # five minutes and a second later
    assert "/account/verify/?next=" in approve(request)["Location"]
