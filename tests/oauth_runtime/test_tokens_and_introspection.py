"""What `HybridValidator` needs from our AS for a registered resource server: JWKS keys with `kid` and
`use: sig`, RS256 tokens whose `iss` is the issuer, `aud` the resource URI (RFC 8707) and `scope` a space
string, and RFC 7662 answers with `active`, `sub`, `iss`, `aud`, `scope` to raw HTTP Basic."""

from __future__ import annotations

import jwt
import pytest
from django.conf import settings
from django.test import Client as HttpClient

from oauth.models import ResourceServer
from rbac.models import Role
from tests.oauth_runtime.conftest import RS_URI, Registered, raw_basic
from tests.support.oauth import exchange, get_code, login, make_resource_server, mcp_url, pkce, token_request

pytestmark = pytest.mark.django_db
ISSUER = f"{settings.AUTHSEC_PUBLIC_URL}/t/acme/oauth"


def _user_token(clients, scope: str = "openid email read write", resource: str = RS_URI) -> str:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, scope=scope, resource=resource)
    response = exchange(clients.public, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def _introspect(registered: Registered, token: str) -> dict:
    response = HttpClient().post(
        "/t/acme/oauth/introspect", {"token": token}, **raw_basic(registered.client_id, registered.secret)
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_jwks_keys_carry_kid_and_use_sig() -> None:
    keys = HttpClient().get("/t/acme/oauth/jwks").json()["keys"]
    assert keys
    for key in keys:
        assert key["kid"] and key["use"] == "sig" and key["alg"] == "RS256" and key["kty"] == "RSA"


def test_user_token_for_the_resource_server_has_what_the_sdk_checks(demo_users, clients, registered) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients)
    header = jwt.get_unverified_header(token)
    jwks = HttpClient().get("/t/acme/oauth/jwks").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=RS_URI, issuer=ISSUER)
    assert header["alg"] == "RS256"
    assert claims["aud"] == RS_URI
    assert claims["iss"] == ISSUER
    assert claims["scope"] == "openid email read write"
    assert claims["sub"] == str(demo_users["alice@acme.test"].pk)


def test_client_credentials_token_for_the_resource_server(clients, registered) -> None:  # type: ignore[no-untyped-def]
    response = token_request(
        grant_type="client_credentials",
        scope="read",
        resource=RS_URI,
        client_id=clients.machine.client_id,
        client_secret=clients.machine_secret,
    )
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["scope"], claims["sub"]) == (RS_URI, "read", clients.machine.client_id)
    body = _introspect(registered, token)
    assert body["active"] is True
    assert (body["sub"], body["scope"], body["aud"], body["iss"]) == (
        clients.machine.client_id,
        "read",
        [RS_URI],
        ISSUER,
    )


def test_introspection_answers_what_the_sdk_reads(demo_users, clients, registered) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients)
    body = _introspect(registered, token)
    assert body["active"] is True
    assert body["sub"] == str(demo_users["alice@acme.test"].pk)
    assert body["iss"] == ISSUER
    assert body["aud"] == [RS_URI]
    assert body["scope"] == "openid email read write"
    assert body["client_id"] == clients.public.client_id
    assert body["token_type"] == "Bearer"


def test_resource_server_learns_nothing_of_tokens_for_other_resources(demo_users, clients, registered) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients, resource=mcp_url())
    assert _introspect(registered, token) == {"active": False}
    # A resource-server client not registered for one URI (a gateway) still sees it.
    gateway = make_resource_server()
    response = HttpClient().post(
        "/t/acme/oauth/introspect", {"token": token}, **raw_basic(gateway.client.client_id, gateway.secret)
    )
    assert response.json()["active"] is True


def test_scope_taken_away_in_rbac_stops_counting_at_introspection(
    demo_users, clients, registered, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients)
    assert _introspect(registered, token)["scope"] == "openid email read write"
    with django_capture_on_commit_callbacks(execute=True):  # the grants cache is invalidated after commit
        for role in Role.objects.filter(name__in=["admin", "developer"]):
            role.scopes.remove(*role.scopes.filter(name="write"))
    assert _introspect(registered, token)["scope"] == "openid email read"


def test_revoked_token_is_inactive(demo_users, clients, registered) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients)
    revoke = HttpClient().post("/t/acme/oauth/revoke", {"token": token, "client_id": clients.public.client_id})
    assert revoke.status_code == 200
    assert _introspect(registered, token) == {"active": False}


def test_disabled_server_gets_no_tokens_and_no_answers(demo_users, clients, registered) -> None:  # type: ignore[no-untyped-def]
    token = _user_token(clients)
    ResourceServer.objects.filter(pk=registered.server.pk).update(is_active=False)
    assert _introspect(registered, token) == {"active": False}
    response = token_request(
        grant_type="client_credentials",
        scope="read",
        resource=RS_URI,
        client_id=clients.machine.client_id,
        client_secret=clients.machine_secret,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


def test_unregistered_resource_is_refused(clients, registered) -> None:  # type: ignore[no-untyped-def]
    response = token_request(
        grant_type="client_credentials",
        scope="read",
        resource="https://notes.example.com/mcp/other",
        client_id=clients.machine.client_id,
        client_secret=clients.machine_secret,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
