"""The self-service account page (/t/<tenant>/account/): the tools a user may use and why (the engine's decisions,
through `rbac.matrix`), their connected clients with revoke (consents, refresh tokens, MCP login sessions — each
through its app's service, the user as actor, only their own rows) and their own recent activity."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model

from accounts.models import User
from audit.models import AuditEvent
from mcp_endpoint.models import AuthSession
from oauth.models import Consent
from rbac.engine import decide
from rbac.grants import load_grants
from rbac.models import Application
from tests.support.oauth import (
    OAuthClients,
    ResourceServer,
    authorize_params,
    exchange,
    get_code,
    introspect,
    login,
    make_resource_server,
    pkce,
    token_request,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]
PAGE = "/t/acme/account/"
ROW = re.compile(r'<tr class="(allowed|denied)" data-tool="([^"]+)">')


def _connect(clients: OAuthClients, email: str = "alice@acme.test") -> tuple[HttpClient, dict[str, str]]:
    """`email` signed in, with a consent and tokens (access, refresh) of the public client from a full code flow."""
    browser = login(email)
    verifier, challenge = pkce()
    code, _ = get_code(browser, clients.public, challenge, scope="openid email read offline_access")
    response = exchange(clients.public, code, verifier)
    assert response.status_code == 200, response.content
    return browser, response.json()


def _refresh(clients: OAuthClients, refresh_token: str) -> int:
    return token_request(
        grant_type="refresh_token", refresh_token=refresh_token, client_id=clients.public.client_id
    ).status_code


def _active(server: ResourceServer, token: str) -> bool:
    return introspect(token, server.client.client_id, server.secret).json()["active"]


def _session(user: User) -> AuthSession:
    session = AuthSession(
        application=Application.objects.get(slug="demo"),
        code_verifier="v" * 43,
        status=AuthSession.Status.AUTHENTICATED,
    )
    session.user = user
    session.authenticated_at = timezone.now()
    session.save()
    return session


def _decisions(html: str, slug: str) -> dict[str, str]:
    section = html.split(f'data-application="{slug}"', 1)[1].split("</section>", 1)[0]
    return {tool: verdict for verdict, tool in ROW.findall(section)}


def test_shows_bobs_tools_as_the_engine_decides(demo_users) -> None:  # type: ignore[no-untyped-def]
    page = login("bob@acme.test").get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    shown = _decisions(html, "demo")
    # bob is an analyst: the open tools and the reports, not the admin's.
    assert shown["hello"] == "allowed" and shown["view_reports"] == "allowed" and shown["admin_panel"] == "denied"
    assert "allowed: has role analyst" in html and "denied: needs any of roles [admin]" in html
    grants = load_grants(demo_users["bob@acme.test"].pk)
    for application in Application.objects.filter(is_active=True):
        expected = {
            policy.tool_name: "allowed" if decide(grants, policy.requirement()).allowed else "denied"
            for policy in application.tool_policies.all()
        }
        assert _decisions(html, application.slug) == expected, application.slug
    assert "analyst" in html and "direct" in html  # where the role came from
    assert 'href="/t/acme/account/security/"' in html


def test_lists_only_the_users_own_clients(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    alice, _ = _connect(clients)
    bob, _ = _connect(clients, "bob@acme.test")
    mine = _session(demo_users["alice@acme.test"])
    _session(demo_users["bob@acme.test"])
    html = alice.get(PAGE).content.decode()
    consent = Consent.objects.get(user__email="alice@acme.test")
    refresh = get_refresh_token_model().objects.get(user__email="alice@acme.test")
    assert f'class="consent" data-id="{consent.pk}"' in html
    assert f'class="refresh-token" data-id="{refresh.pk}"' in html
    assert html.count('class="consent"') == 1 and html.count('class="refresh-token"') == 1
    assert html.count('class="auth-session"') == 1 and f'data-id="{mine.state}"' in html
    # The session's id is its MCP client's bearer secret: never on the page, not even the user's own.
    assert mine.pk not in html


def test_revoking_a_consent_refuses_its_tokens_and_asks_again(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser, tokens = _connect(clients)
    server = make_resource_server()
    assert _active(server, tokens["access_token"]) is True
    consent = Consent.objects.get(user__email="alice@acme.test", revoked_at__isnull=True)
    response = browser.post(f"/t/acme/account/revoke/consent/{consent.pk}")
    assert response.status_code == 302 and response["Location"] == PAGE
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    assert _active(server, tokens["access_token"]) is False
    assert _refresh(clients, tokens["refresh_token"]) == 400  # invalid_grant
    # The next authorize asks again (the consent page, not a redirect with a code).
    _verifier, challenge = pkce()
    again = browser.get("/t/acme/oauth/authorize", authorize_params(clients.public, challenge))
    assert again.status_code == 200
    event = AuditEvent.objects.filter(action="oauth.consent_revoked").latest("seq")
    assert event.actor_label == "alice@acme.test"
    # …and it is in alice's own activity; the client's refresh token is gone from her list (revoked with it).
    html = browser.get(PAGE).content.decode()
    assert 'data-action="oauth.consent_revoked"' in html
    assert 'class="consent"' not in html and 'class="refresh-token"' not in html


def test_revoking_a_refresh_token_ends_the_clients_access(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    """The issue's "the revoked client's next request is refused", shown at the token and introspection endpoints:
    the refresh token no longer mints access tokens, and neither token is active any more."""
    browser, tokens = _connect(clients)
    server = make_resource_server()
    assert _active(server, tokens["access_token"]) is True
    refresh = get_refresh_token_model().objects.get(user__email="alice@acme.test")
    assert browser.post(f"/t/acme/account/revoke/token/{refresh.pk}").status_code == 302
    assert _refresh(clients, tokens["refresh_token"]) == 400
    assert _active(server, tokens["access_token"]) is False
    assert _active(server, tokens["refresh_token"]) is False
    event = AuditEvent.objects.filter(action="oauth.token_revoked_by_admin").latest("seq")
    assert event.actor_label == "alice@acme.test" and event.data["kind"] == "refresh"
    assert 'class="refresh-token"' not in browser.get(PAGE).content.decode()


def test_revoking_an_mcp_session_logs_it_out(demo_users) -> None:  # type: ignore[no-untyped-def]
    session = _session(demo_users["alice@acme.test"])
    browser = login("alice@acme.test")
    # Named by its state (a hash of the id): the id itself is a bearer secret, never put in a URL, and not accepted.
    assert browser.post(f"/t/acme/account/revoke/session/{session.pk}").status_code == 404
    assert browser.post(f"/t/acme/account/revoke/session/{session.state}").status_code == 302
    session.refresh_from_db()
    assert session.status == AuthSession.Status.LOGGED_OUT
    event = AuditEvent.objects.filter(action="mcp.auth_session_revoked").latest("seq")
    assert event.actor_label == "alice@acme.test"


def test_another_users_rows_are_404_and_untouched(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _connect(clients, "bob@acme.test")
    theirs = {
        "consent": Consent.objects.get(user__email="bob@acme.test").pk,
        "token": get_refresh_token_model().objects.get(user__email="bob@acme.test").pk,
        "session": _session(demo_users["bob@acme.test"]).state,
    }
    alice = login("alice@acme.test")
    for kind, pk in theirs.items():
        assert alice.post(f"/t/acme/account/revoke/{kind}/{pk}").status_code == 404, kind
    for kind, pk in (("consent", "1 OR 1=1"), ("token", "x"), ("session", "nope"), ("other", "1")):
        assert alice.post(f"/t/acme/account/revoke/{kind}/{pk}").status_code == 404, kind
    assert Consent.objects.get(pk=theirs["consent"]).revoked_at is None
    assert get_refresh_token_model().objects.get(pk=theirs["token"]).revoked is None
    assert AuthSession.objects.get(state=theirs["session"]).status == AuthSession.Status.AUTHENTICATED
    # GET never revokes.
    assert alice.get(f"/t/acme/account/revoke/consent/{theirs['consent']}").status_code == 405


def test_revoke_needs_the_csrf_token(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser, _ = _connect(clients)
    consent = Consent.objects.get(user__email="alice@acme.test")
    strict = HttpClient(enforce_csrf_checks=True)
    strict.cookies = browser.cookies
    assert strict.post(f"/t/acme/account/revoke/consent/{consent.pk}").status_code == 403
    consent.refresh_from_db()
    assert consent.revoked_at is None


def test_activity_is_the_users_own_newest_first(demo_users) -> None:  # type: ignore[no-untyped-def]
    alice = login("alice@acme.test")
    login("bob@acme.test")
    html = alice.get(PAGE).content.decode()
    activity = html.split('id="activity"', 1)[1]
    mine = AuditEvent.objects.filter(actor_type="user", actor_id=str(demo_users["alice@acme.test"].pk))
    assert mine.exists()
    assert activity.count('class="event"') == min(mine.count(), 50)
    assert "bob@acme.test" not in activity
