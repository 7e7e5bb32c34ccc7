"""OAuth helpers over Django's test client: PKCE, authorize, token, introspection and userinfo requests."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlencode, urlparse

import jwt
from django.conf import settings
from django.http import HttpResponse
from django.test import Client as HttpClient

from oauth.models import Client
from tests.factories import OAuthClientFactory

REDIRECT = "http://127.0.0.1:8765/callback"
PASSWORD = "a-user-password-1"  # the demo users' (`demo_users`, `committed`)


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


# --- Helpers for the negative matrix and the endpoint tests -------------------------------------------------------

LOOPBACK_NATIVE = "http://127.0.0.1/callback"  # RFC 8252 §7.3: registered without a port
WEB_REDIRECT = "https://app.example.com/cb"


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """`Authorization: Basic` as RFC 6749 §2.3.1 spells it (both parts form-urlencoded first)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def token_request(tenant: str = "acme", headers: dict[str, str] | None = None, **data: str) -> HttpResponse:
    """POST to the tenant's token endpoint from a fresh HTTP client (no session, no cookies)."""
    return HttpClient().post(f"/t/{tenant}/oauth/token", data, **(headers or {}))


def exchange(client: Client, code: str, verifier: str | None, **extra: str) -> HttpResponse:
    """The authorization-code exchange of a public client (`None` values are left out of the form)."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client.client_id,
        "code_verifier": verifier,
        **extra,
    }
    return token_request(**{key: value for key, value in data.items() if value is not None})


def introspect(token: str, rs_id: str, rs_secret: str, tenant: str = "acme") -> HttpResponse:
    return HttpClient().post(f"/t/{tenant}/oauth/introspect", {"token": token}, **basic_auth(rs_id, rs_secret))


def userinfo(token: str, tenant: str = "acme") -> HttpResponse:
    return HttpClient().get(f"/t/{tenant}/oauth/userinfo", **bearer(token))


@dataclass
class ResourceServer:
    client: Client
    secret: str


def make_resource_server(name: str = "MCP gateway") -> ResourceServer:
    """A confidential client allowed to introspect (RFC 7662), in the current schema."""
    secret = secrets.token_urlsafe(32)
    client = OAuthClientFactory(machine=True, name=name, client_secret=secret, is_resource_server=True)
    return ResourceServer(client, secret)


TEST_IPS = ("127.0.0.1", "203.0.113.7", "203.0.113.8", "203.0.113.9")
