"""Negative matrix, token endpoint: PKCE, code reuse and expiry, client authentication, RFC 8707 targets,
refresh-token reuse, and clients held by dynamic registration. Each case asserts the exact OAuth error."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db.models.signals import post_save
from django.http import HttpResponse
from django.test import Client as HttpClient
from django.utils import timezone
from oauth2_provider.models import Grant, get_access_token_model

from audit.models import AuditEvent
from oauth.client_services import set_client_status
from oauth.models import Client, ProviderSettings
from tests.factories import ApplicationFactory, OAuthClientFactory
from tests.support.oauth import (
    PASSWORD,
    REDIRECT,
    WEB_REDIRECT,
    authorize_params,
    basic_auth,
    exchange,
    get_code,
    introspect,
    login,
    mcp_url,
    pkce,
    token_request,
    userinfo,
)

pytestmark = pytest.mark.django_db


def assert_error(response: HttpResponse, status: int, error: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error, body
    assert response["Cache-Control"] == "no-store"
    return body


def _code(clients, challenge: str, **extra: str) -> str:  # type: ignore[no-untyped-def]
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, **extra)
    assert code
    return code


# --- PKCE ---------------------------------------------------------------------------------------------------------


def test_missing_code_verifier_is_invalid_request(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge)
    body = assert_error(exchange(clients.public, code, None), 400, "invalid_request")
    assert body["error_description"] == "Code verifier required."
    # The code was not consumed by the failed attempt: the right verifier still works.
    assert exchange(clients.public, code, verifier).status_code == 200


def test_wrong_code_verifier_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    other_verifier, _ = pkce()
    code = _code(clients, challenge)
    assert_error(exchange(clients.public, code, other_verifier), 400, "invalid_grant")


def test_verifier_for_a_code_issued_without_challenge_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # The authorization endpoint refuses requests without a challenge (test_negative_authorize), so such a
    # code can only predate PKCE enforcement: a grant row stored as DOT stores one, minus the challenge.
    code = secrets.token_urlsafe(30)
    Grant.objects.create(
        application=clients.public,
        user=demo_users["alice@acme.test"],
        code=code,
        expires=timezone.now() + timedelta(seconds=60),
        redirect_uri=REDIRECT,
        scope="openid read",
        code_challenge="",
        code_challenge_method="",
        nonce="",
        claims="{}",
        resource=[mcp_url()],
    )
    verifier, _ = pkce()
    body = assert_error(exchange(clients.public, code, verifier), 400, "invalid_grant")
    assert body["error_description"] == "Challenge not found"
    assert_error(exchange(clients.public, code, None), 400, "invalid_request")  # and no verifier at all


# --- Codes: single use, short-lived, bound to client and redirect URI ------------------------------------------


def test_reused_code_is_invalid_grant_and_revokes_what_the_first_use_issued(  # type: ignore[no-untyped-def]
    demo_users, clients, resource_server
) -> None:
    rs = resource_server
    verifier, challenge = pkce()
    code = _code(clients, challenge, scope="openid email read offline_access")
    first = exchange(clients.public, code, verifier)
    assert first.status_code == 200, first.content
    tokens = first.json()
    assert introspect(tokens["access_token"], rs.client.client_id, rs.secret).json()["active"] is True

    second = exchange(clients.public, code, verifier)
    assert_error(second, 400, "invalid_grant")

    # RFC 6749 §4.1.2: the tokens issued from the code are revoked, the refresh token too.
    assert introspect(tokens["access_token"], rs.client.client_id, rs.secret).json() == {"active": False}
    refreshed = token_request(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=clients.public.client_id
    )
    assert_error(refreshed, 400, "invalid_grant")
    event = AuditEvent.objects.get(action="oauth.code_reuse_detected")
    assert event.outcome == "deny"
    assert event.data["client_id"] == clients.public.client_id
    assert event.data["user_id"] == demo_users["alice@acme.test"].pk
    # A third attempt is refused the same way (and audited again).
    assert_error(exchange(clients.public, code, verifier), 400, "invalid_grant")
    assert AuditEvent.objects.filter(action="oauth.code_reuse_detected").count() == 2


def test_code_consumed_by_a_racing_exchange_is_invalid_grant_and_revokes_its_tokens(  # type: ignore[no-untyped-def]
    demo_users, clients
) -> None:
    # Two exchanges of one code both pass validation; the grant's one DELETE decides which one used it. Here the
    # racing exchange's DELETE comes first: it runs while this exchange stores its tokens (the real statement,
    # from a receiver of the AccessToken insert), so this one deletes nothing.
    verifier, challenge = pkce()
    code = _code(clients, challenge, scope="openid email read offline_access")
    access_token_model = get_access_token_model()

    def racing_exchange_used_it(**kwargs: object) -> None:
        Grant.objects.filter(code=code).delete()

    post_save.connect(racing_exchange_used_it, sender=access_token_model, dispatch_uid="test-racing-exchange")
    try:
        raced = exchange(clients.public, code, verifier)
    finally:
        post_save.disconnect(sender=access_token_model, dispatch_uid="test-racing-exchange")
    assert_error(raced, 400, "invalid_grant")
    event = AuditEvent.objects.get(action="oauth.code_reuse_detected")
    assert event.data["client_id"] == clients.public.client_id
    assert len(event.data["families"]) == 1  # this exchange's own refresh token family, revoked
    own = access_token_model.objects.filter(application=clients.public, user=demo_users["alice@acme.test"])
    assert not own.exists()  # and its access token
    assert exchange(clients.public, code, verifier).status_code == 400


def test_reused_code_also_revokes_tokens_rotated_since(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # No `resource`: the token's audience is the issuer, so userinfo accepts it (see test_negative_endpoints).
    verifier, challenge = pkce()
    code = _code(clients, challenge, scope="openid email", resource=None)
    first = exchange(clients.public, code, verifier).json()
    assert userinfo(first["access_token"]).status_code == 200
    rotated = token_request(
        grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=clients.public.client_id
    ).json()
    assert userinfo(rotated["access_token"]).status_code == 200
    assert_error(exchange(clients.public, code, verifier), 400, "invalid_grant")
    assert userinfo(rotated["access_token"]).status_code == 401
    again = token_request(
        grant_type="refresh_token", refresh_token=rotated["refresh_token"], client_id=clients.public.client_id
    )
    assert_error(again, 400, "invalid_grant")


def test_expired_code_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge)
    grant = Grant.objects.get(code=code)
    # AUTHORIZATION_CODE_EXPIRE_SECONDS (60) has passed.
    assert grant.expires - grant.created <= timedelta(seconds=61)
    Grant.objects.filter(pk=grant.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert_error(exchange(clients.public, code, verifier), 400, "invalid_grant")
    assert not AuditEvent.objects.filter(action="oauth.code_reuse_detected").exists()


def test_unknown_code_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, _ = pkce()
    assert_error(exchange(clients.public, secrets.token_urlsafe(30), verifier), 400, "invalid_grant")


def test_code_of_another_client_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge)
    other = OAuthClientFactory(name="Other public client", redirect_uris=REDIRECT)
    assert_error(exchange(other, code, verifier), 400, "invalid_grant")
    assert exchange(clients.public, code, verifier).status_code == 200  # not consumed by the other client


def test_redirect_uri_must_repeat_the_authorization_requests(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge)
    body = assert_error(
        exchange(clients.public, code, verifier, redirect_uri="http://127.0.0.1:8765/other"), 400, "invalid_request"
    )
    assert body["error_description"] == "Mismatching redirect URI."


# --- Client authentication -------------------------------------------------------------------------------------


def _confidential_code(clients, demo_users) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.confidential, challenge, redirect_uri=WEB_REDIRECT)
    return code, verifier


def _confidential_exchange(clients, code: str, verifier: str, **auth: str) -> HttpResponse:  # type: ignore[no-untyped-def]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_REDIRECT, "code_verifier": verifier}
    headers = auth.pop("headers", None)
    return token_request(headers=headers, **data, **auth)  # type: ignore[arg-type]


def test_wrong_client_secret_is_invalid_client(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    code, verifier = _confidential_code(clients, demo_users)
    client_id = clients.confidential.client_id
    basic = _confidential_exchange(clients, code, verifier, headers=basic_auth(client_id, "wrong-secret"))
    assert_error(basic, 401, "invalid_client")
    assert basic["WWW-Authenticate"].startswith("Bearer")
    post = _confidential_exchange(clients, code, verifier, client_id=client_id, client_secret="wrong-secret")
    assert_error(post, 401, "invalid_client")
    # No secret at all: a confidential client cannot pass as a public one.
    assert_error(_confidential_exchange(clients, code, verifier, client_id=client_id), 401, "invalid_client")
    # The right secret still works: failed authentication consumed nothing.
    ok = _confidential_exchange(clients, code, verifier, headers=basic_auth(client_id, clients.secret))
    assert ok.status_code == 200, ok.content


def test_wrong_client_secret_for_client_credentials_is_invalid_client(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    machine = clients.machine.client_id
    assert_error(
        token_request(grant_type="client_credentials", headers=basic_auth(machine, "nope")), 401, "invalid_client"
    )
    assert_error(
        token_request(grant_type="client_credentials", headers=basic_auth("no-such-client", "nope")),
        401,
        "invalid_client",
    )


def test_client_may_not_use_a_grant_type_it_was_not_registered_for(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    response = token_request(
        grant_type="client_credentials", headers=basic_auth(clients.confidential.client_id, clients.secret)
    )
    assert_error(response, 400, "unauthorized_client")
    auth = basic_auth(clients.confidential.client_id, clients.secret)
    assert_error(token_request(grant_type="urn:example:nope", headers=auth), 400, "unsupported_grant_type")


def test_password_grant_is_unsupported_and_checks_no_password(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    """RFC 9700 §2.4. The answer must not depend on the password: the token endpoint would otherwise be an
    unthrottled password oracle open to any public client_id, around the login page's lockout."""
    for client_auth in (
        {"client_id": clients.public.client_id},
        {"headers": basic_auth(clients.confidential.client_id, clients.secret)},
    ):
        answers = []
        for password in (PASSWORD, "wrong-password"):
            response = token_request(
                grant_type="password", username="alice@acme.test", password=password, **client_auth
            )
            answers.append(assert_error(response, 400, "unsupported_grant_type"))
        assert answers[0] == answers[1]
    assert not AuditEvent.objects.filter(action="auth.login").exists()


# --- RFC 8707 resource indicators ----------------------------------------------------------------------------------


def test_unknown_resource_at_the_token_endpoint_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge)
    response = exchange(clients.public, code, verifier, resource="https://elsewhere.example.com/mcp/x")
    assert_error(response, 400, "invalid_target")


def test_known_resource_outside_the_grant_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    ApplicationFactory(slug="reports", name="Reports")
    verifier, challenge = pkce()
    code = _code(clients, challenge)  # granted for the demo endpoint only
    assert_error(exchange(clients.public, code, verifier, resource=mcp_url(app="reports")), 400, "invalid_target")


def test_unknown_resource_for_client_credentials_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    auth = basic_auth(clients.machine.client_id, clients.machine_secret)
    for resource in ("https://elsewhere.example.com/mcp/x", mcp_url("globex", "demo")):
        response = token_request(grant_type="client_credentials", resource=resource, headers=auth)
        body = assert_error(response, 400, "invalid_target")
        assert resource in body["error_description"]
    ok = token_request(grant_type="client_credentials", resource=mcp_url(), headers=auth)
    assert ok.status_code == 200, ok.content


# --- Refresh-token reuse: the whole family, access tokens included ------------------------------------------------


def test_refresh_reuse_revokes_the_familys_access_tokens(demo_users, clients, resource_server) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = _code(clients, challenge, scope="openid read offline_access", resource=None)
    first = exchange(clients.public, code, verifier).json()
    refresh = {"grant_type": "refresh_token", "client_id": clients.public.client_id}
    rotated = token_request(**refresh, refresh_token=first["refresh_token"]).json()
    rs = resource_server
    assert introspect(rotated["access_token"], rs.client.client_id, rs.secret).json()["active"] is True
    assert_error(token_request(**refresh, refresh_token=first["refresh_token"]), 400, "invalid_grant")
    assert introspect(rotated["access_token"], rs.client.client_id, rs.secret).json() == {"active": False}
    assert userinfo(rotated["access_token"]).status_code == 401
    assert userinfo(first["access_token"]).status_code == 401
    # The audit log is shared with committed live-server tests: pick this client's event.
    event = AuditEvent.objects.get(action="oauth.refresh_reuse_detected", data__client_id=clients.public.client_id)
    assert event.outcome == "deny"
    assert event.data["user_id"] == demo_users["alice@acme.test"].pk


# --- Clients from dynamic registration (RFC 7591) ---------------------------------------------------------------


def _register(**metadata: object) -> HttpResponse:
    body = {
        "client_name": "Registered tool",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        **metadata,
    }
    return HttpClient().post("/t/acme/oauth/register", json.dumps(body), content_type="application/json")


def _registration_mode(mode: str) -> None:
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": mode})


def _approve(client_id: str) -> None:
    """What the dashboard's approve button does (its reject button is the same service): the row's change moves the
    tenant's issuance version, which drops every process's copy of the client, so its next token request is served."""
    set_client_status(actor="tests", client=Client.objects.get(client_id=client_id), status=Client.Status.ACTIVE)


def test_pending_client_gets_no_tokens_until_approved(demo_users) -> None:  # type: ignore[no-untyped-def]
    _registration_mode(ProviderSettings.Registration.APPROVAL)
    response = _register()
    assert response.status_code == 201, response.content
    registered = response.json()
    assert registered["authsec_status"] == "pending"
    auth = basic_auth(registered["client_id"], registered["client_secret"])
    assert_error(token_request(grant_type="client_credentials", headers=auth), 401, "invalid_client")
    assert AuditEvent.objects.filter(action="oauth.client_registered", data__status="pending").exists()

    _approve(registered["client_id"])
    approved = token_request(grant_type="client_credentials", headers=auth)
    assert approved.status_code == 200, approved.content

    client = Client.objects.get(client_id=registered["client_id"])
    set_client_status(actor="tests", client=client, status=Client.Status.REJECTED)
    assert_error(token_request(grant_type="client_credentials", headers=auth), 401, "invalid_client")


def test_pending_public_client_cannot_start_an_authorization(demo_users) -> None:  # type: ignore[no-untyped-def]
    _registration_mode(ProviderSettings.Registration.APPROVAL)
    registered = _register(
        grant_types=["authorization_code"], token_endpoint_auth_method="none", redirect_uris=[REDIRECT]
    ).json()
    assert registered["authsec_status"] == "pending"
    pending = Client.objects.get(client_id=registered["client_id"])
    _verifier, challenge = pkce()
    response = login("alice@acme.test").get(
        "/t/acme/oauth/authorize?" + urlencode(authorize_params(pending, challenge))
    )
    assert response.status_code == 403  # a held client: the waiting-for-approval page, no redirect
    assert not response.has_header("Location")
    assert "Registered tool is waiting for approval by an administrator of Acme Corp." in response.content.decode()


def test_closed_registration_is_refused(demo_users) -> None:  # type: ignore[no-untyped-def]
    _registration_mode(ProviderSettings.Registration.CLOSED)
    count = Client.objects.count()
    response = _register()
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"
    assert Client.objects.count() == count


def test_open_registration_gives_an_active_client(demo_users) -> None:  # type: ignore[no-untyped-def]
    _registration_mode(ProviderSettings.Registration.OPEN)
    response = _register(grant_types=["authorization_code"], redirect_uris=[REDIRECT])
    assert response.status_code == 201, response.content
    registered = response.json()
    assert registered["authsec_status"] == "active"
    client = Client.objects.get(client_id=registered["client_id"])
    verifier, challenge = pkce()
    code, _query = get_code(login("alice@acme.test"), client, challenge)
    auth = basic_auth(registered["client_id"], registered["client_secret"])
    tokens = token_request(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier, headers=auth
    )
    assert tokens.status_code == 200, tokens.content


def test_open_registration_still_holds_a_client_credentials_client(demo_users) -> None:  # type: ignore[no-untyped-def]
    """Anyone may register where registration is open; a client acting for itself (no user, no consent) would
    get the tenant's RBAC scopes, so only an admin lets one in."""
    _registration_mode(ProviderSettings.Registration.OPEN)
    response = _register()
    assert response.status_code == 201, response.content
    registered = response.json()
    assert registered["authsec_status"] == "pending"
    auth = basic_auth(registered["client_id"], registered["client_secret"])
    assert_error(token_request(grant_type="client_credentials", scope="read", headers=auth), 401, "invalid_client")
    event = AuditEvent.objects.get(action="oauth.client_registered", data__client_id=registered["client_id"])
    assert event.data["status"] == "pending"

    _approve(registered["client_id"])
    assert token_request(grant_type="client_credentials", scope="read", headers=auth).status_code == 200


def test_registration_with_an_unregistrable_redirect_uri_is_invalid(demo_users) -> None:  # type: ignore[no-untyped-def]
    _registration_mode(ProviderSettings.Registration.OPEN)
    response = _register(
        grant_types=["authorization_code"], token_endpoint_auth_method="none", redirect_uris=["https://x/cb#frag"]
    )
    assert response.status_code == 400
    # RFC 7591 §3.2.2's specific code (oauth.views checks the redirect-URI policy before DOT's generic answer).
    assert response.json()["error"] == "invalid_redirect_uri"


def test_registration_can_be_read_updated_and_deleted_with_its_token(demo_users) -> None:  # type: ignore[no-untyped-def]
    """RFC 7592: an update of a client held for approval needs approving again."""
    _registration_mode(ProviderSettings.Registration.APPROVAL)
    registered = _register(
        grant_types=["authorization_code"], token_endpoint_auth_method="none", redirect_uris=[REDIRECT]
    ).json()
    client_id = registered["client_id"]
    assert registered["registration_client_uri"].endswith(f"/t/acme/oauth/register/{client_id}")
    path = f"/t/acme/oauth/register/{client_id}"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {registered['registration_access_token']}"}
    http = HttpClient()
    assert http.get(path).status_code == 401
    assert http.get(path, **auth).json()["client_id"] == client_id
    Client.objects.filter(client_id=client_id).update(status=Client.Status.ACTIVE)  # an admin approves

    update = {"redirect_uris": ["http://127.0.0.1/elsewhere"], "grant_types": ["authorization_code"]}
    updated = http.put(path, json.dumps(update), content_type="application/json", **auth)
    assert updated.status_code == 200, updated.content
    assert Client.objects.get(client_id=client_id).status == Client.Status.PENDING
    assert AuditEvent.objects.filter(action="oauth.client_updated", data__status="pending").exists()

    auth = {"HTTP_AUTHORIZATION": f"Bearer {updated.json()['registration_access_token']}"}  # rotated on update
    _registration_mode(ProviderSettings.Registration.CLOSED)
    closed = http.put(path, json.dumps(update), content_type="application/json", **auth)
    assert closed.status_code == 403
    assert closed.json()["error"] == "access_denied"
    assert http.delete(path, **auth).status_code == 204
    assert not Client.objects.filter(client_id=client_id).exists()
    assert AuditEvent.objects.filter(action="oauth.client_deleted").exists()
