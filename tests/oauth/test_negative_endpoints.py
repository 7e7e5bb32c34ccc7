"""Negative matrix, the other endpoints: introspection (RFC 7662, resource servers only, per tenant), revocation
(RFC 7009), userinfo, JWKS across a key rotation, and the CIMD fetcher's SSRF guard."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone
from django_tenants.utils import schema_context
from oauth2_provider.cimd import CIMDError

from oauth import keys
from oauth.models import SigningKey
from oauth.registration import TenantCIMDFetcher
from tests.support.oauth import (
    authorize_params,
    basic_auth,
    bearer,
    decode,
    exchange,
    get_code,
    introspect,
    login,
    make_resource_server,
    mcp_url,
    pkce,
    token_request,
    userinfo,
)

pytestmark = pytest.mark.django_db
ISSUER = f"{settings.AUTHSEC_PUBLIC_URL}/t/acme/oauth"


@pytest.fixture
def plain_tokens(demo_users, clients) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """alice's tokens requested without `resource`: audience is the issuer, so userinfo accepts them."""
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, scope="openid email", resource=None)
    response = exchange(clients.public, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()


def _jwks(tenant: str = "acme") -> dict:
    return HttpClient().get(f"/t/{tenant}/oauth/jwks").json()


# --- Introspection --------------------------------------------------------------------------------------------------


def test_resource_server_introspects_an_active_token(code_tokens, clients, resource_server) -> None:  # type: ignore[no-untyped-def]
    response = introspect(code_tokens["access_token"], resource_server.client.client_id, resource_server.secret)
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["aud"] == [mcp_url()]
    assert body["scope"] == "openid email read offline_access"
    assert body["client_id"] == clients.public.client_id
    assert body["username"] == "alice@acme.test"
    claims = jwt.decode(code_tokens["access_token"], options={"verify_signature": False})
    assert abs(body["exp"] - claims["exp"]) <= 1


def test_client_credentials_in_the_body_work_too(code_tokens, resource_server) -> None:  # type: ignore[no-untyped-def]
    response = HttpClient().post(
        "/t/acme/oauth/introspect",
        {
            "token": code_tokens["access_token"],
            "client_id": resource_server.client.client_id,
            "client_secret": resource_server.secret,
        },
    )
    assert response.json()["active"] is True


def test_introspection_refuses_a_token_in_the_query_string(code_tokens, resource_server) -> None:  # type: ignore[no-untyped-def]
    response = HttpClient().get(
        "/t/acme/oauth/introspect",
        {"token": code_tokens["access_token"]},
        **basic_auth(resource_server.client.client_id, resource_server.secret),
    )
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"
    assert "active" not in response.json()


@pytest.mark.parametrize("who", ["anonymous", "machine-client", "public-client", "wrong-secret", "user-token"])
def test_introspection_is_refused_to_anyone_but_resource_servers(code_tokens, clients, resource_server, who) -> None:  # type: ignore[no-untyped-def]
    headers = {
        "anonymous": {},
        "machine-client": basic_auth(clients.machine.client_id, clients.machine_secret),
        "public-client": basic_auth(clients.public.client_id, ""),
        "wrong-secret": basic_auth(resource_server.client.client_id, "wrong"),
        "user-token": bearer(code_tokens["access_token"]),  # has no `introspection` scope
    }[who]
    response = HttpClient().post("/t/acme/oauth/introspect", {"token": code_tokens["access_token"]}, **headers)
    assert response.status_code == 403
    assert b"active" not in response.content


def test_acme_token_is_inactive_at_globex(code_tokens, resource_server, globex) -> None:  # type: ignore[no-untyped-def]
    with schema_context(globex.schema_name):
        globex_rs = make_resource_server("Globex gateway")
    response = introspect(code_tokens["access_token"], globex_rs.client.client_id, globex_rs.secret, tenant="globex")
    assert response.status_code == 200
    assert response.json() == {"active": False}
    # acme's resource server cannot introspect at globex: clients are per tenant too.
    cross = introspect(code_tokens["access_token"], resource_server.client.client_id, resource_server.secret, "globex")
    assert cross.status_code == 403


def test_acme_token_is_refused_by_globex_userinfo(plain_tokens) -> None:  # type: ignore[no-untyped-def]
    assert userinfo(plain_tokens["access_token"], tenant="globex").status_code == 401


def test_unknown_and_missing_tokens(resource_server) -> None:  # type: ignore[no-untyped-def]
    rs = resource_server
    assert introspect("not-a-token", rs.client.client_id, rs.secret).json() == {"active": False}
    missing = HttpClient().post(
        "/t/acme/oauth/introspect", {}, **basic_auth(resource_server.client.client_id, resource_server.secret)
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


# --- Userinfo and revocation ----------------------------------------------------------------------------------------


def test_userinfo_with_the_jwt_returns_email(plain_tokens, demo_users) -> None:  # type: ignore[no-untyped-def]
    response = userinfo(plain_tokens["access_token"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "alice@acme.test"
    assert body["sub"] == str(demo_users["alice@acme.test"].pk)


def test_userinfo_refuses_a_token_for_another_audience(code_tokens) -> None:  # type: ignore[no-untyped-def]
    # RFC 8707: this token is for the MCP endpoint only (aud = its URL), not for the issuer's userinfo.
    response = userinfo(code_tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_userinfo_without_or_with_a_bad_token(plain_tokens) -> None:  # type: ignore[no-untyped-def]
    assert HttpClient().get("/t/acme/oauth/userinfo").status_code == 401
    assert userinfo(plain_tokens["access_token"][:-4] + "AAAA").status_code == 401  # signature part altered


def test_revoked_access_token_fails_at_userinfo_and_introspection(plain_tokens, clients, resource_server) -> None:  # type: ignore[no-untyped-def]
    assert userinfo(plain_tokens["access_token"]).status_code == 200
    response = HttpClient().post(
        "/t/acme/oauth/revoke",
        {
            "token": plain_tokens["access_token"],
            "token_type_hint": "access_token",
            "client_id": clients.public.client_id,
        },
    )
    assert response.status_code == 200
    assert userinfo(plain_tokens["access_token"]).status_code == 401
    rs = resource_server
    assert introspect(plain_tokens["access_token"], rs.client.client_id, rs.secret).json() == {"active": False}
    # DOT revokes the bound refresh token with it (RFC 7009 §2.1 allows it), so it cannot mint a new one.
    refreshed = token_request(
        grant_type="refresh_token", refresh_token=plain_tokens["refresh_token"], client_id=clients.public.client_id
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_revoked_refresh_token_cannot_be_used(plain_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    revoke = HttpClient().post(
        "/t/acme/oauth/revoke",
        {
            "token": plain_tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": clients.public.client_id,
        },
    )
    assert revoke.status_code == 200
    refreshed = token_request(
        grant_type="refresh_token", refresh_token=plain_tokens["refresh_token"], client_id=clients.public.client_id
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert userinfo(plain_tokens["access_token"]).status_code == 401  # its access token went with it


def test_a_client_cannot_revoke_another_clients_token(plain_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    response = HttpClient().post(
        "/t/acme/oauth/revoke",
        {"token": plain_tokens["access_token"]},
        **basic_auth(clients.machine.client_id, clients.machine_secret),
    )
    assert response.status_code == 200  # RFC 7009 §2.2: no hint whether the token exists
    assert userinfo(plain_tokens["access_token"]).status_code == 200


def test_revocation_with_a_wrong_secret_is_invalid_client(plain_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    response = HttpClient().post(
        "/t/acme/oauth/revoke",
        {"token": plain_tokens["access_token"]},
        **basic_auth(clients.machine.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert userinfo(plain_tokens["access_token"]).status_code == 200


# --- Signing keys -------------------------------------------------------------------------------------------------


def test_jwks_keeps_the_previous_key_after_rotation(demo_users, clients, resource_server) -> None:  # type: ignore[no-untyped-def]
    machine = basic_auth(clients.machine.client_id, clients.machine_secret)
    old_token = token_request(grant_type="client_credentials", headers=machine).json()["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    new_key = keys.create_signing_key(actor="tests")
    assert new_key.kid != old_kid
    jwks = _jwks()
    assert [key["kid"] for key in jwks["keys"]][:2] == [new_key.kid, old_kid]
    assert all("d" not in key and key["alg"] == "RS256" for key in jwks["keys"])  # public halves only

    # A token signed by the old key still verifies (signature, iss, aud, exp) and is still active.
    claims = decode(old_token, jwks, audience=ISSUER)
    assert claims["iss"] == ISSUER
    rs = resource_server
    assert introspect(old_token, rs.client.client_id, rs.secret).json()["active"] is True

    new_token = token_request(grant_type="client_credentials", headers=machine).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert decode(new_token, jwks, audience=ISSUER)["sub"] == clients.machine.client_id

    # The retired key is published until every token it signed has expired, then dropped.
    retired = SigningKey.objects.get(kid=old_kid)
    lifetime = max(settings.OAUTH_ACCESS_TOKEN_SECONDS, settings.OAUTH_ID_TOKEN_SECONDS)
    assert retired.expires_at >= retired.retired_at + timedelta(seconds=lifetime)
    SigningKey.objects.filter(kid=old_kid).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert [key["kid"] for key in _jwks()["keys"]] == [new_key.kid]
    with pytest.raises(StopIteration):
        decode(old_token, _jwks(), audience=ISSUER)


def test_jwt_from_another_tenant_does_not_verify_against_this_jwks(demo_users, clients, globex) -> None:  # type: ignore[no-untyped-def]
    machine = basic_auth(clients.machine.client_id, clients.machine_secret)
    token = token_request(grant_type="client_credentials", headers=machine).json()["access_token"]
    globex_jwks = _jwks("globex")
    assert jwt.get_unverified_header(token)["kid"] not in {key["kid"] for key in globex_jwks["keys"]}
    # Even with acme's key, the issuer check tells the tenants apart.
    acme_key = jwt.PyJWK(_jwks()["keys"][0]).key
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(
            token,
            acme_key,
            algorithms=["RS256"],
            audience=ISSUER,
            issuer=f"{settings.AUTHSEC_PUBLIC_URL}/t/globex/oauth",
        )


# --- CIMD: SSRF guard --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    [
        "https://127.0.0.1/client.json",
        "https://localhost/client.json",
        "https://[::1]/client.json",
        "https://10.0.0.1/client.json",
        "https://172.16.0.1/client.json",
        "https://192.168.1.1/client.json",
        "https://169.254.169.254/latest/meta-data/client.json",
        "https://[fe80::1]/client.json",
        "https://0.0.0.0/client.json",
    ],
)
def test_cimd_fetcher_refuses_non_public_targets(client_id: str) -> None:
    with pytest.raises(CIMDError, match="non-public address"):
        TenantCIMDFetcher().fetch(client_id)


@pytest.mark.parametrize(
    ("client_id", "message"),
    [
        ("http://client.example.com/client.json", "https scheme"),
        ("http://127.0.0.1/client.json", "https scheme"),
        ("https://user@client.example.com/client.json", "userinfo"),
        ("https://client.example.com/client.json#frag", "fragment"),
        ("https://client.example.com/a/../client.json", "dot path segments"),
    ],
)
def test_cimd_fetcher_refuses_malformed_client_ids(client_id: str, message: str) -> None:
    with pytest.raises(CIMDError, match=message):
        TenantCIMDFetcher().fetch(client_id)


@pytest.mark.parametrize(
    "client_id",
    ["https://10.0.0.1/client.json", "https://169.254.169.254/latest/meta-data/client.json"],
)
def test_development_loopback_setting_still_refuses_other_private_targets(settings, client_id: str) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    with pytest.raises(CIMDError, match="non-public address"):
        TenantCIMDFetcher().fetch(client_id)


def test_authorize_with_a_private_cimd_client_id_shows_the_error_page(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    params = {**authorize_params(clients.public, challenge), "client_id": "https://169.254.169.254/latest/client.json"}
    response = login("alice@acme.test").get("/t/acme/oauth/authorize?" + urlencode(params))
    assert response.status_code == 400
    assert not response.has_header("Location")
    assert "<code>invalid_request</code>" in response.content.decode()
