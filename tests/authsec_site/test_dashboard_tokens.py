"""The dashboard's Tokens & sessions page (/t/<tenant>/admin/tokens/): every live access token, refresh token and
MCP login session in one searchable list, never a token value; each revoke asks to confirm, goes through the owning
app's audited service and ends the token at once (introspection, the token endpoint)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from audit.models import AuditEvent
from mcp_endpoint.models import AuthSession
from rbac.models import Application
from tests.factories import OAuthClientFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.oauth import (
    OAuthClients,
    ResourceServer,
    exchange,
    get_code,
    introspect,
    login,
    make_resource_server,
    pkce,
    token_request,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]
PAGE = "/t/acme/admin/tokens/"


def _connect(clients: OAuthClients, email: str = "alice@acme.test") -> dict[str, str]:
    """`email`'s tokens (access, refresh) of the public client from a full code + PKCE flow."""
    verifier, challenge = pkce()
    code, _ = get_code(login(email), clients.public, challenge, scope="openid email read offline_access")
    response = exchange(clients.public, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()


def _session(email: str) -> AuthSession:
    from accounts.models import User

    session = AuthSession(
        application=Application.objects.get(slug="demo"),
        code_verifier="v" * 43,
        status=AuthSession.Status.AUTHENTICATED,
    )
    session.user = User.objects.get(email=email)
    session.authenticated_at = timezone.now()
    session.save()
    return session


def _active(server: ResourceServer, token: str) -> bool:
    return introspect(token, server.client.client_id, server.secret).json()["active"]


def _admin() -> HttpClient:
    return log_in("acme", "admin@acme.test", ADMIN_PASSWORD)


def _rows(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('class="token-row" data-kind="')[1:]]


def test_lists_every_live_kind_without_a_token_value(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    tokens = _connect(clients)
    session = _session("bob@acme.test")
    page = _admin().get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert sorted(_rows(html)) == ["access", "refresh", "session"]
    assert "alice@acme.test" in html and "bob@acme.test" in html and "Claude Desktop" in html
    access = AccessToken.objects.get(user__email="alice@acme.test")
    assert access.token_checksum[:12] in html and f'data-id="{access.pk}"' in html
    for secret in (tokens["access_token"], tokens["refresh_token"], session.pk, session.code_verifier):
        assert secret not in html
    stored = RefreshToken.objects.get(user__email="alice@acme.test").token
    assert not stored or stored not in html


def test_leaves_out_what_is_no_longer_live(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _connect(clients)
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    RefreshToken.objects.update(revoked=timezone.now())
    session = _session("bob@acme.test")
    AuthSession.objects.filter(pk=session.pk).update(status=AuthSession.Status.LOGGED_OUT)
    html = _admin().get(PAGE).content.decode()
    assert _rows(html) == []
    assert "No live tokens or sessions yet." in html


def test_searches_by_email_client_and_kind(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _connect(clients, "alice@acme.test")
    _session("bob@acme.test")
    admin = _admin()
    assert sorted(_rows(admin.get(PAGE, {"q": "ALICE@acme"}).content.decode())) == ["access", "refresh"]
    assert _rows(admin.get(PAGE, {"q": "bob@"}).content.decode()) == ["session"]
    assert sorted(_rows(admin.get(PAGE, {"q": "claude desk"}).content.decode())) == ["access", "refresh"]
    assert sorted(_rows(admin.get(PAGE, {"q": clients.public.client_id}).content.decode())) == ["access", "refresh"]
    assert _rows(admin.get(PAGE, {"q": "demo"}).content.decode()) == ["session"]  # the application's slug
    assert _rows(admin.get(PAGE, {"kind": "refresh"}).content.decode()) == ["refresh"]
    assert _rows(admin.get(PAGE, {"q": "alice", "kind": "session"}).content.decode()) == []
    nothing = admin.get(PAGE, {"q": "nobody-at-all"}).content.decode()
    assert _rows(nothing) == [] and "Nothing live matches your search." in nothing


def test_an_unknown_kind_filter_is_a_clear_400(demo_users) -> None:  # type: ignore[no-untyped-def]
    response = _admin().get(PAGE, {"kind": "<script>"})
    assert response.status_code == 400
    assert "Unknown kind" in response.content.decode() and "<script>" not in response.content.decode()


def test_pages_fifty_rows_newest_first(demo_users) -> None:  # type: ignore[no-untyped-def]
    client = OAuthClientFactory(name="Paging client")
    expires = timezone.now() + timedelta(hours=1)
    made = [
        AccessToken.objects.create(application=client, token=secrets.token_urlsafe(24), expires=expires, scope="read")
        for _ in range(53)
    ]
    admin = _admin()
    first = admin.get(PAGE).content.decode()
    assert first.count('class="token-row"') == 50 and "Page 1 of 2" in first
    assert f'data-id="{made[-1].pk}"' in first and f'data-id="{made[0].pk}"' not in first
    second = admin.get(PAGE, {"page": "2"}).content.decode()
    assert second.count('class="token-row"') == 3 and f'data-id="{made[0].pk}"' in second


def test_revoking_an_access_token_asks_then_ends_it(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    tokens = _connect(clients)
    server = make_resource_server()
    access = AccessToken.objects.get(user__email="alice@acme.test")
    url = f"{PAGE}access/{access.pk}/revoke/"
    admin = _admin()
    confirm = admin.get(url)
    assert confirm.status_code == 200 and "Yes, revoke it" in confirm.content.decode()
    assert _active(server, tokens["access_token"]) is True  # asking changed nothing
    response = admin.post(url)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert _active(server, tokens["access_token"]) is False
    assert token_request(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=clients.public.client_id
    ).status_code == 400  # fmt: skip
    event = AuditEvent.objects.filter(action="oauth.token_revoked_by_admin").latest("seq")
    assert event.actor_label == "admin@acme.test" and event.data == {
        "kind": "access", "token_id": access.pk, "client_id": clients.public.client_id, "user": "alice@acme.test",
    }  # fmt: skip
    assert "is revoked" in admin.get(PAGE).content.decode()
    assert admin.post(url).status_code == 404  # no longer live


def test_revoking_a_refresh_token_ends_both(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    tokens = _connect(clients)
    server = make_resource_server()
    refresh = RefreshToken.objects.get(user__email="alice@acme.test")
    assert _admin().post(f"{PAGE}refresh/{refresh.pk}/revoke/").status_code == 302
    assert _active(server, tokens["access_token"]) is False
    assert _active(server, tokens["refresh_token"]) is False
    event = AuditEvent.objects.filter(action="oauth.token_revoked_by_admin").latest("seq")
    assert event.actor_label == "admin@acme.test" and event.data["kind"] == "refresh"


def test_revoking_an_mcp_session_logs_it_out(demo_users) -> None:  # type: ignore[no-untyped-def]
    session = _session("bob@acme.test")
    assert _admin().post(f"{PAGE}session/{session.state}/revoke/").status_code == 302
    session.refresh_from_db()
    assert session.status == AuthSession.Status.LOGGED_OUT
    event = AuditEvent.objects.filter(action="mcp.auth_session_revoked").latest("seq")
    assert event.actor_label == "admin@acme.test"


def test_revoke_needs_the_csrf_token(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    tokens = _connect(clients)
    server = make_resource_server()
    access = AccessToken.objects.get(user__email="alice@acme.test")
    strict = HttpClient(enforce_csrf_checks=True)
    strict.cookies = _admin().cookies
    assert strict.post(f"{PAGE}access/{access.pk}/revoke/").status_code == 403
    assert _active(server, tokens["access_token"]) is True


@pytest.mark.parametrize("path", ["access/999999999/revoke/", "access/not-a-number/revoke/", "grant/1/revoke/"])
def test_an_unknown_row_or_kind_is_404_and_changes_nothing(demo_users, clients, path: str) -> None:  # type: ignore[no-untyped-def]
    _connect(clients)
    before = AccessToken.objects.count()
    assert _admin().post(PAGE + path).status_code == 404
    assert AccessToken.objects.count() == before
    assert not AuditEvent.objects.filter(action="oauth.token_revoked_by_admin").exists()
