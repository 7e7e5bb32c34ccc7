"""Negative matrix, sign-in: CSRF on the login form, lockout per account and per client IP (with the lockout
message, even for the right password), audited, on the tenant login page and on the dashboard's login form."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db
LOGIN = "/t/acme/accounts/login/"
ADMIN_LOGIN = "/t/acme/admin/login/"
LOCKED = "Too many failed sign-in attempts."
PASSWORD = "the-right-password-1"


def _user(email: str, clean_throttle: list[str]) -> None:
    clean_throttle.append(email)
    user = UserFactory(email=email)
    user.set_password(PASSWORD)
    user.save()


def _signed_in(browser: HttpClient) -> bool:
    return "_auth_user_id" in browser.session


def _fail(browser: HttpClient, email: str, url: str = LOGIN) -> None:
    response = browser.post(url, {"username": email, "password": "wrong-password"})
    assert response.status_code == 200
    assert LOCKED not in response.content.decode()


def test_login_without_csrf_token_is_forbidden(in_acme, clean_throttle) -> None:  # type: ignore[no-untyped-def]
    _user("csrf@acme.test", clean_throttle)
    browser = HttpClient(enforce_csrf_checks=True)
    response = browser.post(LOGIN, {"username": "csrf@acme.test", "password": PASSWORD})
    assert response.status_code == 403
    assert not _signed_in(browser)
    # With the token from the form, the same request signs in.
    browser.get(LOGIN)
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    response = browser.post(LOGIN, {"username": "csrf@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert _signed_in(browser)


def test_account_is_locked_after_repeated_failures(in_acme, clean_throttle) -> None:  # type: ignore[no-untyped-def]
    email = "locked@acme.test"
    _user(email, clean_throttle)
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT):
        _fail(browser, email)
    response = browser.post(LOGIN, {"username": email, "password": PASSWORD})  # the right password
    assert response.status_code == 200
    assert LOCKED in response.content.decode()
    assert not _signed_in(browser)
    # The account is locked, whatever the client IP; other accounts are not.
    other_ip = HttpClient(REMOTE_ADDR="203.0.113.8")
    assert LOCKED in other_ip.post(LOGIN, {"username": email.upper(), "password": PASSWORD}).content.decode()
    assert not _signed_in(other_ip)
    _user("free@acme.test", clean_throttle)
    assert browser.post(LOGIN, {"username": "free@acme.test", "password": PASSWORD}).status_code == 302

    event = AuditEvent.objects.get(action="auth.lockout", data__email=email)  # live-server tests commit theirs
    assert event.outcome == "deny"
    assert event.data["by"] == "account"
    assert event.data["email"] == email
    assert event.data["failures"] == settings.LOGIN_MAX_FAILURES_PER_ACCOUNT


def test_success_before_the_limit_resets_the_account_counter(in_acme, clean_throttle) -> None:  # type: ignore[no-untyped-def]
    email = "forgetful@acme.test"
    _user(email, clean_throttle)
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT - 1):
        _fail(browser, email)
    assert browser.post(LOGIN, {"username": email, "password": PASSWORD}).status_code == 302
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT - 1):
        _fail(browser, email)
    assert browser.post(LOGIN, {"username": email, "password": PASSWORD}).status_code == 302
    assert not AuditEvent.objects.filter(action="auth.lockout", data__email=email).exists()


def test_client_ip_is_locked_after_failures_across_accounts(in_acme, clean_throttle, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES_PER_IP = 3
    _user("victim@acme.test", clean_throttle)
    attacker = HttpClient(REMOTE_ADDR="203.0.113.9")
    for n in range(3):
        email = f"guess{n}@acme.test"  # a different account each time: no account reaches its own limit
        clean_throttle.append(email)
        _fail(attacker, email)
    response = attacker.post(LOGIN, {"username": "victim@acme.test", "password": PASSWORD})
    assert LOCKED in response.content.decode()
    assert not _signed_in(attacker)
    # The account itself is not locked: from another address it signs in.
    elsewhere = HttpClient(REMOTE_ADDR="203.0.113.8")
    assert elsewhere.post(LOGIN, {"username": "victim@acme.test", "password": PASSWORD}).status_code == 302
    event = AuditEvent.objects.get(action="auth.lockout", ip="203.0.113.9")  # live-server tests commit theirs
    assert event.data["by"] == "ip"
    assert event.data["failures"] == 3


def test_dashboard_login_form_is_throttled_too(in_acme, clean_throttle) -> None:  # type: ignore[no-untyped-def]
    email = "admin@acme.test"
    clean_throttle.append(email)
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT):
        _fail(browser, email, ADMIN_LOGIN)
    response = browser.post(ADMIN_LOGIN, {"username": email, "password": ADMIN_PASSWORD, "next": "/t/acme/admin/"})
    assert response.status_code == 200
    assert LOCKED in response.content.decode()
    assert not _signed_in(browser)
    # The lockout is per account, shared by both forms.
    assert LOCKED in browser.post(LOGIN, {"username": email, "password": ADMIN_PASSWORD}).content.decode()
    assert AuditEvent.objects.filter(action="auth.lockout", data__email=email).exists()
