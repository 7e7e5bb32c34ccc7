"""The one-line call sites count what happened: sign-ins, lockouts, registrations, SDK limits, grant lookups.

(tools/call, tokens, rotations and the audit writer are counted over a live server in test_prometheus_scrape.py.)
"""

from __future__ import annotations

import json
import secrets

import pytest
from django.test import Client as HttpClient
from prometheus_client import REGISTRY

from oauth.models import ProviderSettings
from rbac.grants import clear_local_cache, grants_for_user_id
from sdkmgr import throttle as sdk_throttle
from tests.factories import UserFactory
from tests.support.oauth import REDIRECT

pytestmark = pytest.mark.django_db
LOGIN = "/t/acme/accounts/login/"


class Delta:
    """How much a sample grew since it was first read."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = self._now()

    def _now(self) -> float:
        return REGISTRY.get_sample_value(self.name, self.labels) or 0.0

    def __call__(self) -> float:
        return self._now() - self.start


def test_sign_ins_and_lockouts(in_acme, clean_throttle, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 2
    email = "metrics-login@acme.test"
    clean_throttle.append(email)
    user = UserFactory(email=email)
    user.set_password("the-right-password-1")
    user.save()
    succeeded = Delta("authsec_logins_total", tenant="acme", outcome="success")
    failed = Delta("authsec_logins_total", tenant="acme", outcome="failure")
    throttled = Delta("authsec_throttled_requests_total", tenant="acme", limit="login")
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    assert browser.post(LOGIN, {"username": email, "password": "the-right-password-1"}).status_code == 302
    assert (succeeded(), failed(), throttled()) == (1, 0, 0)
    browser = HttpClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(2):
        browser.post(LOGIN, {"username": email, "password": "wrong-password"})
    assert (succeeded(), failed(), throttled()) == (1, 2, 0)
    browser.post(LOGIN, {"username": email, "password": "the-right-password-1"})  # locked: not even checked
    assert (succeeded(), failed(), throttled()) == (1, 2, 1)


def _register() -> int:
    body = {
        "client_name": "Metrics client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
    }
    return HttpClient().post("/t/acme/oauth/register", json.dumps(body), content_type="application/json").status_code


def test_registrations_by_status(in_acme) -> None:  # type: ignore[no-untyped-def]
    counted = {status: Delta("authsec_dcr_registrations_total", tenant="acme", status=status) for status in
               ("active", "pending", "refused")}  # fmt: skip
    for mode, status in (("open", 201), ("approval", 201), ("closed", 403)):
        ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": mode})
        assert _register() == status
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": "open"})
    bad = HttpClient().post("/t/acme/oauth/register", "[]", content_type="application/json")
    assert bad.status_code == 400
    assert {status: delta() for status, delta in counted.items()} == {"active": 1, "pending": 1, "refused": 2}


@pytest.fixture
def sdk_window(settings) -> str:  # type: ignore[no-untyped-def]
    """A client id of its own (its counters expire with their minute) and a limit of two calls a minute."""
    settings.SDKMGR_RATE_LIMIT_PER_MINUTE = 2
    return f"metrics-sdk-{secrets.token_hex(6)}"


def test_sdk_limit_refusals(in_acme, sdk_window: str) -> None:  # type: ignore[no-untyped-def]
    refused = Delta("authsec_throttled_requests_total", tenant="acme", limit="sdk_call")
    answers = [sdk_throttle.hit(sdk_window, "call") for _ in range(4)]
    assert answers[:2] == [0, 0] and all(answers[2:])
    assert refused() == 2


@pytest.mark.usefixtures("fresh_grants_cache")
def test_grant_lookups_by_where_they_were_found(in_acme) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory(email="metrics-grants@acme.test")
    found = {result: Delta("authsec_rbac_grants_cache_lookups_total", result=result) for result in
             ("local", "redis", "miss")}  # fmt: skip
    grants_for_user_id(user.pk)  # nowhere yet: the database
    grants_for_user_id(user.pk)  # this process
    clear_local_cache()
    grants_for_user_id(user.pk)  # Redis
    assert {result: delta() for result, delta in found.items()} == {"local": 1, "redis": 1, "miss": 1}
