"""Issue 18 finding 1: a login link someone else started never binds silently (RFC 8628 §5.4, remote phishing).

Live uvicorn, real `mcp` client, real HTTP browser sessions (httpx2 with cookies): the callback only redirects to
the confirmation page; only the signed-in callback user, typing the right user code in a CSRF-protected POST
before the pending TTL, binds the session, once.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import UTC, timedelta

import httpx2
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from mcp.shared.exceptions import MCPError

from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from oauth.models import Consent
from tests.mcp_endpoint.test_login_tools import login
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, Committed, commit_in_acme, hidden_fields, url
from tests.support.mcp_login import ATTACKER_AGENT, authorize, confirmation_page, mcp, sign_in, start_as, status, submit

pytestmark = pytest.mark.django_db
FIVE = sorted(LOGIN_TOOLS)


@pytest.fixture(scope="module", autouse=True)
def cleanup(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Remove what the live server committed (sessions, remembered consents, the login client)."""
    yield
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        AuthSession.objects.all().delete()
        Consent.objects.filter(client__client_id=LOGIN_CLIENT_ID).delete()
        OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()


def browser(server: LiveServer) -> httpx2.Client:
    return httpx2.Client(base_url=server.url, follow_redirects=False, timeout=30)


def row(session_id: str) -> AuthSession:
    with schema_context("tenant_acme"):
        return AuthSession.objects.select_related("user", "callback_user").get(pk=session_id)


def actions(session_id: str) -> list[str]:
    with schema_context("tenant_acme"):
        state = AuthSession.objects.get(pk=session_id).state
        events = AuditEvent.objects.filter(target_type="mcp_endpoint.authsession", target_id=state[:16])
        return list(events.order_by("created_at", "pk").values_list("action", flat=True))


def remembered_consent(server: LiveServer, email: str) -> None:
    """`email` logs in once through the flow, so the login client's consent is remembered for them."""
    login(server, email)
    with schema_context("tenant_acme"):
        assert Consent.objects.filter(user__email=email, client__client_id=LOGIN_CLIENT_ID).exists()


def test_remembered_consent_still_lands_on_the_confirmation_page_naming_the_session(
    asgi_server: LiveServer, committed: Committed
) -> None:
    remembered_consent(asgi_server, "bob@acme.test")
    endpoint = url(asgi_server)
    started = start_as(endpoint)
    assert started["status"] == "pending" and started["user_code"] in started["message"]
    with browser(asgi_server) as http:
        sign_in(http, asgi_server, "bob@acme.test")
        first = http.get(started["authorization_url"])
        assert first.status_code == 302  # the consent is remembered: no consent page, straight to the callback
        page = confirmation_page(http, asgi_server, first.headers["location"])

        # The callback did not bind: still pending, nobody's session.
        assert status(endpoint, started["session_id"]) == "pending"
        assert mcp(endpoint, started["session_id"]) == FIVE
        session = row(started["session_id"])
        assert session.user is None and session.callback_user.email == "bob@acme.test"
        assert (session.started_ip, session.started_user_agent) == ("127.0.0.1", ATTACKER_AGENT)

        text = page.text
        assert ">Demo tools<" in text and f"<code>{endpoint}</code>" in text  # application and its MCP endpoint
        assert session.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") in text
        assert 'id="confirm-ip">127.0.0.1<' in text
        assert html.escape(ATTACKER_AGENT) in text and ATTACKER_AGENT not in text
        assert "bob@acme.test" in text and 'name="user_code"' in text
        assert started["user_code"] not in text  # the user types it: the page never shows it (RFC 8628 §5.4)

        done = submit(http, page, started["user_code"].lower().replace("-", " "))  # forgiving input
        assert done.status_code == 200 and "You can return to your assistant" in done.text
    assert status(endpoint, started["session_id"]) == "authenticated"
    assert mcp(endpoint, started["session_id"]) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
    assert actions(started["session_id"]) == [
        "mcp.auth_session_started",
        "mcp.auth_session_confirmation_shown",
        "mcp.auth_session_confirmed",
        "mcp.auth_session_authenticated",
    ]
    with schema_context("tenant_acme"):
        event = AuditEvent.objects.get(action="mcp.auth_session_started", target_id=session.state[:16])
    assert event.data["ip"] == "127.0.0.1" and event.data["user_agent"] == ATTACKER_AGENT


def test_attacker_link_opened_by_a_signed_in_victim_stays_pending_and_decline_ends_it(
    asgi_server: LiveServer, committed: Committed
) -> None:
    remembered_consent(asgi_server, "alice@acme.test")
    endpoint = url(asgi_server)
    attacker = start_as(endpoint)  # anonymous: the attacker sends the victim only the link

    with browser(asgi_server) as victim:
        sign_in(victim, asgi_server, "alice@acme.test")
        page = confirmation_page(victim, asgi_server, authorize(victim, asgi_server, attacker["authorization_url"]))
        assert "Only continue if you started this sign-in yourself" in page.text

        # Nothing the attacker holds works while the victim has not confirmed.
        assert status(endpoint, attacker["session_id"]) == "pending"
        assert mcp(endpoint, attacker["session_id"]) == FIVE
        assert isinstance(mcp(endpoint, attacker["session_id"], "hello"), MCPError)
        info = json.loads(
            mcp(endpoint, None, "oauth_user_info", {"session_id": attacker["session_id"]}).content[0].text
        )
        assert info == {"status": "pending"}

        # Another signed-in user cannot confirm alice's callback, even with the right code.
        with browser(asgi_server) as other:
            sign_in(other, asgi_server, "carol@acme.test")
            shown = other.get(str(page.url))
            assert shown.status_code == 403 and "user_code" not in shown.text
            form = {
                **hidden_fields(page.text),
                "csrfmiddlewaretoken": _csrf(other),
                "user_code": attacker["user_code"],
            }
            refused = other.post("/t/acme/mcp-login/confirm", data=form, headers={"Referer": str(page.url)})
            assert refused.status_code == 403 and "belongs to another account" in refused.text  # not a CSRF 403
        # Nobody signed in: sent to the login page, nothing bound.
        with browser(asgi_server) as anonymous:
            assert anonymous.get(str(page.url)).headers["location"].startswith("/t/acme/accounts/login/")
        assert status(endpoint, attacker["session_id"]) == "pending"

        declined = submit(victim, page, "", action="decline")
        assert declined.status_code == 200 and "Sign-in declined" in declined.text
        again = submit(victim, page, attacker["user_code"])  # the page cannot be used afterwards
        assert again.status_code == 400
    assert status(endpoint, attacker["session_id"]) == "denied"
    assert mcp(endpoint, attacker["session_id"]) == FIVE
    assert row(attacker["session_id"]).user is None
    assert actions(attacker["session_id"])[-1] == "mcp.auth_session_declined"


def _csrf(http: httpx2.Client) -> str:
    """A valid CSRF token of this browser: its CSRF cookie's secret (Django accepts it unmasked)."""
    return next(cookie.value for cookie in http.cookies.jar if cookie.name == "csrftoken")


def test_a_wrong_user_code_does_not_bind_and_five_end_the_session(
    asgi_server: LiveServer, committed: Committed
) -> None:
    endpoint = url(asgi_server)
    started = start_as(endpoint, "mcp-client/1.0")
    with browser(asgi_server) as http:
        sign_in(http, asgi_server, "dave@acme.test")
        page = confirmation_page(http, asgi_server, authorize(http, asgi_server, started["authorization_url"]))
        wrong = "BBBB-BBBB" if started["user_code"] != "BBBB-BBBB" else "CCCC-CCCC"
        mismatch = submit(http, page, wrong)
        assert mismatch.status_code == 400 and 'id="confirm-error"' in mismatch.text
        assert status(endpoint, started["session_id"]) == "pending" and row(started["session_id"]).user is None
        for _ in range(4):
            last = submit(http, mismatch, wrong)
        assert last.status_code == 400 and "Too many wrong codes" in last.text
        late = submit(http, mismatch, started["user_code"])  # the right code no longer helps
        assert late.status_code == 400
    assert status(endpoint, started["session_id"]) == "denied"
    assert row(started["session_id"]).user is None
    assert actions(started["session_id"]).count("mcp.auth_session_code_mismatch") == 5
    assert actions(started["session_id"])[-1] == "mcp.auth_session_declined"


def test_a_bound_session_cannot_be_confirmed_again_rebound_or_its_callback_replayed(
    asgi_server: LiveServer, committed: Committed
) -> None:
    endpoint = url(asgi_server)
    started = start_as(endpoint, "mcp-client/1.0")
    with browser(asgi_server) as http:
        sign_in(http, asgi_server, "bob@acme.test")
        callback = authorize(http, asgi_server, started["authorization_url"])
        page = confirmation_page(http, asgi_server, callback)
        assert submit(http, page, started["user_code"]).status_code == 200
        first = row(started["session_id"])
        assert first.status == AuthSession.Status.AUTHENTICATED and first.user.email == "bob@acme.test"

        assert submit(http, page, started["user_code"]).status_code == 400  # re-POST of the same form
        assert http.get(callback).status_code == 400  # the callback URL again
        assert http.get(str(page.url)).status_code == 400

        # carol, with a new authorization code for the same state, cannot take the session over.
        with browser(asgi_server) as other:
            sign_in(other, asgi_server, "carol@acme.test")
            replay = other.get(authorize(other, asgi_server, started["authorization_url"]))
            assert replay.status_code == 400
    again = row(started["session_id"])
    assert (again.user.email, again.authenticated_at, again.callback_user.email) == (
        "bob@acme.test",
        first.authenticated_at,
        "bob@acme.test",
    )
    assert actions(started["session_id"]).count("mcp.auth_session_confirmed") == 1
    assert mcp(endpoint, started["session_id"], "hello").content[0].text == "Hello, bob@acme.test!"


def test_a_pending_session_expires_within_ten_minutes_and_then_cannot_be_confirmed(
    asgi_server: LiveServer, committed: Committed
) -> None:
    endpoint = url(asgi_server)
    started = start_as(endpoint, "mcp-client/1.0")
    assert started["expires_in"] == 600
    session = row(started["session_id"])
    assert session.expires_at - session.created_at == timedelta(seconds=600)
    with browser(asgi_server) as http:
        sign_in(http, asgi_server, "dave@acme.test")
        page = confirmation_page(http, asgi_server, authorize(http, asgi_server, started["authorization_url"]))
        commit_in_acme(
            lambda: AuthSession.objects.filter(pk=started["session_id"]).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        )
        late = submit(http, page, started["user_code"])
        assert late.status_code == 400 and "expired" in late.text
    assert status(endpoint, started["session_id"]) == "expired"
    assert row(started["session_id"]).user is None


def test_confirming_gives_the_authenticated_session_its_own_ttl(asgi_server: LiveServer, committed: Committed) -> None:
    session_id = login(asgi_server, "dave@acme.test")
    session = row(session_id)
    assert session.expires_at - session.authenticated_at == timedelta(seconds=3600)


def test_a_post_without_the_csrf_token_is_refused(asgi_server: LiveServer, committed: Committed) -> None:
    endpoint = url(asgi_server)
    started = start_as(endpoint, "mcp-client/1.0")
    with browser(asgi_server) as http:
        sign_in(http, asgi_server, "bob@acme.test")
        page = confirmation_page(http, asgi_server, authorize(http, asgi_server, started["authorization_url"]))
        form = {"state": hidden_fields(page.text)["state"], "user_code": started["user_code"], "action": "confirm"}
        forged = http.post("/t/acme/mcp-login/confirm", data=form, headers={"Referer": str(page.url)})
        assert forged.status_code == 403 and "CSRF verification failed" in forged.text
        assert status(endpoint, started["session_id"]) == "pending"
        assert submit(http, page, started["user_code"]).status_code == 200  # the real form still works
    assert status(endpoint, started["session_id"]) == "authenticated"
