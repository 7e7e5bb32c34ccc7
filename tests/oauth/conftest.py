"""OAuth test helpers: a public PKCE client and a confidential one in acme, the demo users and data."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import pytest
from django.conf import settings
from django.test import Client as HttpClient

from oauth.models import Client
from rbac.demo import DEMO, seed_rbac
from tenants.models import Tenant
from tests.factories import UserFactory

REDIRECT = "http://127.0.0.1:8765/callback"
PASSWORD = "a-user-password-1"


def mcp_url(tenant: str = "acme", app: str = "demo") -> str:
    return f"{settings.AUTHSEC_PUBLIC_URL}/t/{tenant}/mcp/{app}"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class OAuthClients:
    public: Client
    confidential: Client
    secret: str
    machine: Client
    machine_secret: str


@pytest.fixture
def demo_users(in_acme: Tenant) -> dict[str, object]:
    users = {}
    for email in DEMO["acme"]["users"]:
        user = UserFactory(email=email)
        user.set_password(PASSWORD)
        user.save()
        users[email] = user
    seed_rbac("acme")
    return users


@pytest.fixture
def clients(in_acme: Tenant) -> OAuthClients:
    public = Client.objects.create(
        name="Claude Desktop",
        client_type=Client.CLIENT_PUBLIC,
        authorization_grant_type=Client.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT,
        algorithm=Client.RS256_ALGORITHM,
        client_secret="",
    )
    secret = secrets.token_urlsafe(32)
    confidential = Client.objects.create(
        name="Web app",
        client_type=Client.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Client.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.com/cb",
        algorithm=Client.RS256_ALGORITHM,
        client_secret=secret,
    )
    machine_secret = secrets.token_urlsafe(32)
    machine = Client.objects.create(
        name="Nightly job",
        client_type=Client.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
        client_secret=machine_secret,
    )
    return OAuthClients(public, confidential, secret, machine, machine_secret)


def login(email: str, tenant: str = "acme") -> HttpClient:
    browser = HttpClient()
    response = browser.post(f"/t/{tenant}/accounts/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    return browser


def authorize_params(client: Client, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email read",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-123",
        "resource": mcp_url(),
    }
    params.update(extra)
    return {key: value for key, value in params.items() if value is not None}


def get_code(browser: HttpClient, client: Client, challenge: str, **extra: str) -> tuple[str, dict[str, list[str]]]:
    """Run authorize (consenting if asked) and return the code and the redirect's query."""
    params = authorize_params(client, challenge, **extra)
    response = browser.get("/t/acme/oauth/authorize?" + urlencode(params))
    if response.status_code == 200:
        form = {k: v for k, v in params.items()}
        form["scope"] = params["scope"]
        form["allow"] = "Authorize"
        response = browser.post("/t/acme/oauth/authorize?" + urlencode(params), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    query = parse_qs(urlparse(response["Location"]).query)
    return query.get("code", [""])[0], query


def decode(token: str, jwks: dict, audience: str | None = None) -> dict:
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(key).key
    return jwt.decode(
        token, public, algorithms=["RS256"], audience=audience, options={"verify_aud": audience is not None}
    )
