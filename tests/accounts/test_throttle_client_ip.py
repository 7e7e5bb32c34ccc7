"""Issue 18 finding 5: the per-IP login limit counts the derived client address (authsec_site.lib.client_ip).

A client that sends a new X-Forwarded-For on each request is still one address; behind a trusted proxy each
forwarded client has its own count, and a spoofed hop to the left of the proxy's gains nothing. One test runs
against the live uvicorn server with the flags `make run` uses, so uvicorn cannot rewrite the client either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from django_tenants.utils import schema_context

from accounts import throttle
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.live import LiveServer

pytestmark = pytest.mark.django_db
LOGIN = "/t/acme/accounts/login/"
ADMIN_LOGIN = "/t/acme/admin/login/"
LOCKED = "Too many failed sign-in attempts."
PASSWORD = "the-right-password-1"
PROXY = "10.0.0.5"
ATTACKER = "198.51.100.20"
CLIENT_A = "198.51.100.31"
CLIENT_B = "198.51.100.32"
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _reset(schema: str, ips: list[str], emails: list[str]) -> None:
    with schema_context(schema):  # cache keys carry the schema
        cache.delete_many(
            [throttle._key("ip", ip) for ip in ips]  # noqa: SLF001 - the throttle's own key scheme
            + [throttle._key("account", email) for email in emails]  # noqa: SLF001
        )


@pytest.fixture
def counted(in_acme: Tenant) -> Iterator[tuple[list[str], list[str]]]:
    """(addresses, emails) a test may count failures for; their Redis counters are reset before and after."""
    ips = [PROXY, ATTACKER, CLIENT_A, CLIENT_B, "127.0.0.1", *(f"192.0.2.{n}" for n in range(1, 40))]
    emails = [f"guess{n}@acme.test" for n in range(40)] + ["victim@acme.test", "admin@acme.test"]
    _reset(in_acme.schema_name, ips, emails)
    yield ips, emails
    _reset(in_acme.schema_name, ips, emails)


@pytest.fixture
def victim(in_acme: Tenant) -> str:
    user = UserFactory(email="victim@acme.test", is_staff=True)  # staff: the dashboard's form signs in too
    user.set_password(PASSWORD)
    user.save()
    return user.email


def _new(action: str, since: int) -> AuditEvent:
    """The one `action` event written by this test (live-server tests commit events of their own)."""
    return AuditEvent.objects.get(action=action, id__gt=since)


@pytest.fixture
def since(in_acme: Tenant) -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _fail(browser: HttpClient, n: int, url: str = LOGIN, **headers: str) -> None:
    """A failed sign-in for a different account each time (no account reaches its own limit)."""
    response = browser.post(url, {"username": f"guess{n}@acme.test", "password": "wrong-password"}, **headers)
    assert response.status_code == 200
    assert LOCKED not in response.content.decode()


def _sign_in(browser: HttpClient, email: str, url: str = LOGIN, **headers: str) -> str:
    response = browser.post(url, {"username": email, "password": PASSWORD}, **headers)
    return "locked" if LOCKED in response.content.decode() else str(response.status_code)


@pytest.mark.parametrize("url", [LOGIN, ADMIN_LOGIN])
def test_new_x_forwarded_for_on_each_attempt_does_not_escape_the_ip_limit(  # type: ignore[no-untyped-def]
    url, victim, counted, settings, since
) -> None:
    settings.LOGIN_MAX_FAILURES_PER_IP = 3
    settings.TRUSTED_PROXIES = []  # the default: no proxy, the socket peer is the client
    attacker = HttpClient(REMOTE_ADDR=ATTACKER)
    for n in range(3):
        _fail(attacker, n, url, HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}", HTTP_FORWARDED=f"for=192.0.2.{n + 1}")
    assert _sign_in(attacker, victim, url, HTTP_X_FORWARDED_FOR="192.0.2.30") == "locked"
    event = _new("auth.lockout", since)
    assert (event.data["by"], event.ip) == ("ip", ATTACKER)


def test_an_untrusted_peer_cannot_claim_to_be_a_trusted_proxy(victim, counted, settings, since) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_MAX_FAILURES_PER_IP = 3
    settings.TRUSTED_PROXIES = [f"{PROXY}/32"]
    attacker = HttpClient(REMOTE_ADDR=ATTACKER)
    for n in range(3):
        _fail(attacker, n, HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}, {PROXY}")
    assert _sign_in(attacker, victim, HTTP_X_FORWARDED_FOR=f"192.0.2.30, {PROXY}") == "locked"
    assert _new("auth.lockout", since).ip == ATTACKER


@pytest.mark.parametrize("url", [LOGIN, ADMIN_LOGIN])
def test_behind_a_trusted_proxy_each_forwarded_client_is_counted_apart(  # type: ignore[no-untyped-def]
    url, victim, counted, settings, since
) -> None:
    settings.LOGIN_MAX_FAILURES_PER_IP = 3
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    proxy = HttpClient(REMOTE_ADDR=PROXY)
    for n in range(3):
        # Client A puts a new made-up hop to the left of the address the proxy appended: it is never read.
        _fail(proxy, n, url, HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}, {CLIENT_A}")
    assert _sign_in(proxy, victim, url, HTTP_X_FORWARDED_FOR=f"192.0.2.30, {CLIENT_A}") == "locked"
    lockout = _new("auth.lockout", since)
    assert (lockout.data["by"], lockout.ip) == ("ip", CLIENT_A)
    # Client B, behind the same proxy, is not locked out by A's failures.
    assert _sign_in(proxy, victim, url, HTTP_X_FORWARDED_FOR=CLIENT_B) == "302"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(victim, counted, settings, since) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    proxy = HttpClient(REMOTE_ADDR=PROXY)
    assert _sign_in(proxy, victim, HTTP_X_FORWARDED_FOR=f"192.0.2.9, {CLIENT_B}, 10.0.0.7") == "302"
    event = _new("auth.login_succeeded", since)
    assert event.ip == CLIENT_B


def test_forwarded_header_when_the_proxy_writes_rfc_7239(victim, counted, settings, since) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    settings.FORWARDED_HEADER = "Forwarded"
    proxy = HttpClient(REMOTE_ADDR=PROXY)
    headers = {"HTTP_FORWARDED": f'for=192.0.2.9, for="{CLIENT_B}:4711";proto=https', "HTTP_X_FORWARDED_FOR": "1.1.1.1"}
    assert _sign_in(proxy, victim, **headers) == "302"
    assert _new("auth.login_succeeded", since).ip == CLIENT_B


def test_live_server_ignores_x_forwarded_for_from_an_untrusted_peer(  # type: ignore[no-untyped-def]
    asgi_server: LiveServer, counted, settings
) -> None:
    """Real HTTP through uvicorn started with `make run`'s flags: the client (127.0.0.1, not a trusted proxy)
    sends a new X-Forwarded-For with every attempt and is still locked out after LOGIN_MAX_FAILURES_PER_IP."""
    limit = settings.LOGIN_MAX_FAILURES_PER_IP  # the live server runs with the configured value
    assert limit <= 38, "the counted() fixture resets 40 accounts"
    with httpx2.Client(base_url=asgi_server.url) as browser:
        for n in range(limit + 1):
            page = browser.get(LOGIN)
            assert page.status_code == 200
            response = browser.post(
                LOGIN,
                data={
                    "username": f"guess{n}@acme.test",
                    "password": "wrong-password",
                    "csrfmiddlewaretoken": _CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                },
                headers={"X-Forwarded-For": f"192.0.2.{n + 1}", "Forwarded": f"for=192.0.2.{n + 1}"},
            )
            assert response.status_code == 200
            assert (LOCKED in response.text) == (n == limit), n
