"""The OpenID Connect code flow for clients from every creation path: dynamic registration (no scope, `openid`,
`openid email profile`) and the dashboard's client form. Each gets an ID token signed with the tenant's key.

Issue 18 finding 3: clients created by registration had no ID-token algorithm, and the token endpoint answered
500 "This application does not support signed tokens" to any request carrying `openid` (the default scope)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient

from oauth.models import Client, ProviderSettings
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import AdminForm
from tests.support.oauth import REDIRECT, basic_auth, decode, login, mcp_url, pkce, token_request

pytestmark = pytest.mark.django_db
ISSUER = f"{settings.AUTHSEC_PUBLIC_URL}/t/acme/oauth"


def _register_public_client() -> dict[str, Any]:
    """What an MCP client does on its first connection: RFC 7591 registration of a public PKCE client."""
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": "open"})
    body = {
        "client_name": "MCP Inspector",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }
    response = HttpClient().post("/t/acme/oauth/register", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def authorize(browser: HttpClient, client_id: str, challenge: str, **params: str | None) -> str:
    """Authorize as the signed-in user (consenting on the page when asked) and return the code."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": params.pop("redirect_uri", None) or REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-oidc",
        **params,
    }
    url = "/t/acme/oauth/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})
    response = browser.get(url)
    if response.status_code == 200:  # the consent page: post its own form back, allowing
        form = {key: value for key, value in response.context["form"].initial.items() if value is not None}
        response = browser.post(url, {**form, "allow": "Authorize"})
    assert response.status_code == 302, response.content.decode()[:2000]
    redirect = parse_qs(urlparse(response["Location"]).query)
    assert redirect.get("state") == ["st-oidc"], redirect
    return redirect["code"][0]


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token (RS256)."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def assert_valid_id_token(body: dict[str, Any], client_id: str, nonce: str, user_pk: int) -> dict[str, Any]:
    jwks = HttpClient().get("/t/acme/oauth/jwks").json()
    claims = decode(body["id_token"], jwks, audience=client_id)  # signature with the tenant's published key
    assert claims["iss"] == ISSUER
    assert claims["aud"] == client_id
    assert claims["sub"] == str(user_pk)
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


@pytest.mark.parametrize(
    ("scope", "granted"),
    [(None, "openid"), ("openid", "openid"), ("openid email profile", "openid email profile")],
    ids=["no-scope", "openid", "openid-email-profile"],
)
def test_registered_client_gets_a_signed_id_token(demo_users, scope: str | None, granted: str) -> None:  # type: ignore[no-untyped-def]
    registered = _register_public_client()
    client_id = registered["client_id"]
    assert Client.objects.get(client_id=client_id).algorithm == Client.RS256_ALGORITHM
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(16)
    code = authorize(login("alice@acme.test"), client_id, challenge, scope=scope, nonce=nonce, resource=mcp_url())
    response = token_request(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=client_id,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == granted
    claims = assert_valid_id_token(body, client_id, nonce, demo_users["alice@acme.test"].pk)
    assert claims["tenant_id"] == "acme"
    if "email" in granted.split():
        assert claims["email"] == "alice@acme.test"
        assert claims["name"] == demo_users["alice@acme.test"].get_full_name()
    else:
        assert "email" not in claims


def test_dashboard_registered_confidential_client_runs_the_oidc_flow(demo_users) -> None:  # type: ignore[no-untyped-def]
    """An admin adds a web app in the dashboard (DOT's client form, untouched defaults); it signs users in."""
    admin = HttpClient()
    assert (
        admin.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD}).status_code
        == 302
    )
    form = AdminForm(admin.get("/t/acme/admin/oauth/client/add/").content.decode())
    client_id = form.values["client_id"][0]
    secret = form.values["client_secret"][0]  # shown once on the add form, stored hashed
    form.set("name", "Intranet")
    form.set("redirect_uris", "https://intranet.example.com/cb")
    form.choose("client_type", "Confidential")
    form.choose("authorization_grant_type", "Authorization code")
    saved = admin.post("/t/acme/admin/oauth/client/add/", form.data())
    assert saved.status_code == 302, saved.content.decode()[:3000]
    client = Client.objects.get(client_id=client_id)
    assert client.algorithm == Client.RS256_ALGORITHM
    assert client.status == Client.Status.ACTIVE

    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(16)
    code = authorize(
        login("bob@acme.test"),
        client_id,
        challenge,
        scope="openid email",
        nonce=nonce,
        redirect_uri="https://intranet.example.com/cb",
    )
    response = token_request(
        headers=basic_auth(client_id, secret),
        grant_type="authorization_code",
        code=code,
        redirect_uri="https://intranet.example.com/cb",
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.content
    claims = assert_valid_id_token(response.json(), client_id, nonce, demo_users["bob@acme.test"].pk)
    assert claims["email"] == "bob@acme.test"


def test_every_existing_client_signs_with_rs256_after_the_migration(in_acme) -> None:  # type: ignore[no-untyped-def]
    """The data migration gave older rows RS256, and the database refuses a client without it from now on."""
    from django.db import IntegrityError, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM oauth_client WHERE algorithm <> 'RS256'")
        assert cursor.fetchone()[0] == 0
    client = Client.objects.create(name="No alg", client_type="public", authorization_grant_type="authorization-code")
    assert client.algorithm == Client.RS256_ALGORITHM
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(algorithm="")


def test_the_data_migration_gives_older_clients_rs256(in_acme) -> None:  # type: ignore[no-untyped-def]
    """A row from before the migration (no algorithm, or HS256) is signed with RS256 after its data step."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("oauth.migrations.0004_client_id_token_rs256")
    with connection.cursor() as cursor:  # the state before 0004 (DDL is rolled back with the test)
        cursor.execute("ALTER TABLE oauth_client DROP CONSTRAINT oauth_client_signs_id_tokens_rs256")
    older = [
        Client.objects.create(name=name, client_type="public", authorization_grant_type="authorization-code")
        for name in ("DCR before the fix", "HS256 client")
    ]
    Client.objects.filter(pk=older[0].pk).update(algorithm="")
    Client.objects.filter(pk=older[1].pk).update(algorithm="HS256")
    migration.sign_with_rs256(apps, None)
    assert {Client.objects.get(pk=client.pk).algorithm for client in older} == {Client.RS256_ALGORITHM}
