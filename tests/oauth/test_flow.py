"""The authorization-code + PKCE flow end to end over HTTP, and the token's claims."""

from __future__ import annotations

from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.test import Client as HttpClient

from audit.models import AuditEvent
from oauth.models import Consent
from tests.support.oauth import REDIRECT, decode, get_code, login, mcp_url, pkce

pytestmark = pytest.mark.django_db
ISSUER = f"{settings.AUTHSEC_PUBLIC_URL}/t/acme/oauth"


def _token(client_http: HttpClient, **data: str):  # type: ignore[no-untyped-def]
    return client_http.post("/t/acme/oauth/token", data)


def test_code_flow_issues_a_jwt_with_the_users_grants(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser = login("alice@acme.test")
    verifier, challenge = pkce()
    code, query = get_code(browser, clients.public, challenge)
    assert query["state"] == ["st-123"]
    assert query["iss"] == [ISSUER]  # RFC 9207
    response = _token(
        HttpClient(),
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=clients.public.client_id,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.OAUTH_ACCESS_TOKEN_SECONDS
    jwks = HttpClient().get("/t/acme/oauth/jwks").json()
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = decode(body["access_token"], jwks, audience=mcp_url())
    assert claims["iss"] == ISSUER
    assert claims["aud"] == mcp_url()
    assert claims["sub"] == str(demo_users["alice@acme.test"].pk)
    assert claims["email"] == "alice@acme.test"
    assert claims["tenant_id"] == "acme"
    assert claims["client_id"] == clients.public.client_id
    assert claims["exp"] - claims["iat"] == settings.OAUTH_ACCESS_TOKEN_SECONDS
    assert claims["jti"]
    assert claims["scope"] == "openid email read"
    assert sorted(claims["roles"]) == ["admin", "developer"]
    assert claims["groups"] == ["engineering"]
    assert sorted(claims["scopes"]) == ["read", "write"]
    assert sorted(claims["resources"]) == ["analytics", "projects"]
    assert claims["permissions"] == []
    id_token = decode(body["id_token"], jwks, audience=clients.public.client_id)
    assert id_token["email"] == "alice@acme.test"
    assert id_token["iss"] == ISSUER
    assert AuditEvent.objects.filter(action="oauth.token_issued", actor_label="alice@acme.test").exists()
    assert AuditEvent.objects.filter(action="oauth.consent_granted").exists()


def test_consent_is_remembered_until_revoked(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    from oauth.services import revoke_consent

    browser = login("bob@acme.test")
    _verifier, challenge = pkce()
    get_code(browser, clients.public, challenge)
    # Second time: no consent page, straight back with a code.
    from tests.support.oauth import authorize_params

    response = browser.get("/t/acme/oauth/authorize?" + urlencode(authorize_params(clients.public, challenge)))
    assert response.status_code == 302
    assert "code=" in response["Location"]
    revoke_consent(actor="tests", consent=Consent.objects.get(user=demo_users["bob@acme.test"]))
    response = browser.get("/t/acme/oauth/authorize?" + urlencode(authorize_params(clients.public, challenge)))
    assert response.status_code == 200
    assert "Allow Claude Desktop?" in response.content.decode()


def test_metadata_documents_advertise_only_what_works(demo_users) -> None:  # type: ignore[no-untyped-def]
    http = HttpClient()
    for url in (
        "/t/acme/oauth/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/t/acme/oauth",
        "/t/acme/oauth/.well-known/openid-configuration",
    ):
        data = http.get(url).json()
        assert data["issuer"] == ISSUER, url
        assert data["code_challenge_methods_supported"] == ["S256"]
        assert data["token_endpoint"] == f"{ISSUER}/token"
        assert data["response_types_supported"] == ["code"]
        assert "read" in data["scopes_supported"]
        assert data["authorization_response_iss_parameter_supported"] is True
    assert http.get("/.well-known/oauth-authorization-server/t/nosuch/oauth").status_code == 404


def test_client_credentials_token(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    response = _token(
        HttpClient(),
        grant_type="client_credentials",
        client_id=clients.machine.client_id,
        client_secret=clients.machine_secret,
        scope="read",
    )
    assert response.status_code == 200, response.content
    claims = decode(response.json()["access_token"], HttpClient().get("/t/acme/oauth/jwks").json())
    assert claims["sub"] == clients.machine.client_id
    assert claims["roles"] == []
    assert claims["aud"] == ISSUER


def test_refresh_rotates_and_reuse_revokes_the_family(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser = login("alice@acme.test")
    verifier, challenge = pkce()
    code, _ = get_code(browser, clients.public, challenge, scope="openid read offline_access")
    first = _token(
        HttpClient(),
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=clients.public.client_id,
        code_verifier=verifier,
    ).json()
    second = _token(
        HttpClient(),
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=clients.public.client_id,
    )
    assert second.status_code == 200, second.content
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    reuse = _token(
        HttpClient(),
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=clients.public.client_id,
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The whole family is revoked: the rotated refresh token is dead too.
    after = _token(
        HttpClient(),
        grant_type="refresh_token",
        refresh_token=rotated["refresh_token"],
        client_id=clients.public.client_id,
    )
    assert after.json()["error"] == "invalid_grant"
    assert AuditEvent.objects.filter(action="oauth.refresh_reuse_detected").exists()
