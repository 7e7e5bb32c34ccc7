"""Redirect URIs follow OAuth 2.1 / RFC 8252 for every client: the same matrix at dynamic registration
(RFC 7591 `invalid_redirect_uri`), the dashboard's client form (a field error) and Client ID Metadata Documents,
and at /authorize for rows that were saved before the policy."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from oauth2_provider import cimd
from oauthlib.common import Request as OauthlibRequest

from accounts.models import User
from oauth.models import Client, ProviderSettings
from oauth.registration import TenantCIMDFetcher
from tests.factories import OAuthClientFactory
from tests.support.oauth import authorize_params, login, pkce

pytestmark = pytest.mark.django_db

WEB, NATIVE = "web", "native"
BOTH = (WEB, NATIVE)

# (id, uri, the kinds of client that may register it). Decided as OAuth 2.1 §2.3.1 / §8.4 and RFC 8252 §7, §8.3.
MATRIX: list[tuple[str, str, tuple[str, ...]]] = [
    # https, any host and port; a query is allowed (OAuth 2.1 §2.3.1), a fragment never (RFC 6749 §3.1.2).
    ("https", "https://app.example.com/cb", BOTH),
    ("https-port-query", "https://app.example.com:8443/cb?tenant=a", BOTH),
    ("https-ip-literal", "https://203.0.113.5/cb", BOTH),
    ("https-idn-punycode", "https://xn--bcher-kva.example/cb", BOTH),
    ("https-idn-unicode", "https://bücher.example/cb", ()),  # homographs: register the A-label form
    ("https-fragment", "https://app.example.com/cb#x", ()),
    ("https-empty-fragment", "https://app.example.com/cb#", ()),
    ("https-userinfo", "https://good.example@evil.example/cb", ()),
    ("https-encoded-userinfo", "https://good.example%2F@evil.example/cb", ()),
    ("https-encoded-host", "https://evil%2Eexample/cb", ()),
    ("https-trailing-dot", "https://app.example.com./cb", ()),
    ("https-dot-dot", "https://app.example.com/cb/../evil", ()),
    ("https-encoded-dot-dot", "https://app.example.com/cb/%2e%2e/evil", ()),
    ("https-backslash", "https://app.example.com\\@evil.example/cb", ()),
    ("https-wildcard", "https://*.example.com/cb", ()),
    ("https-no-authority", "https:/app.example.com/cb", ()),
    ("https-port-0", "https://app.example.com:0/cb", ()),
    ("https-port-too-big", "https://app.example.com:99999/cb", ()),
    ("https-control-character", "https://app.example.com/c\x7fb", ()),
    # http: only the loopback interface (RFC 8252 §7.3, §8.3), any port.
    ("http-other-host", "http://evil.example/cb", ()),
    ("http-loopback-v4-port", "http://127.0.0.1:1234/cb", BOTH),
    ("http-loopback-v4", "http://127.0.0.1/cb", BOTH),
    ("http-loopback-v6", "http://[::1]/cb", BOTH),
    ("http-loopback-v6-port", "http://[::1]:8080/cb", BOTH),
    ("http-localhost", "http://localhost/cb", BOTH),
    ("http-localhost-port", "http://localhost:6274/oauth/callback", BOTH),
    ("http-127.0.0.2", "http://127.0.0.2/cb", ()),  # RFC 8252 names 127.0.0.1, and DOT's port rule does too
    ("http-localhost-subdomain-trick", "http://localhost.evil.com/cb", ()),
    ("http-nip-io", "http://127.0.0.1.nip.io/cb", ()),
    ("http-localhost-trailing-dot", "http://localhost./cb", ()),  # may be resolved by DNS
    ("http-ipv4-shorthand", "http://127.1/cb", ()),
    ("http-ipv4-integer", "http://2130706433/cb", ()),
    ("http-ipv4-hex", "http://0x7f000001/cb", ()),
    ("http-v4-mapped-v6", "http://[::ffff:127.0.0.1]/cb", ()),
    ("http-loopback-userinfo", "http://evil.example@127.0.0.1/cb", ()),
    # Private-use schemes (RFC 8252 §7.1): reverse-domain, native (public) clients only.
    ("private-use", "com.example.app:/oauth2redirect", (NATIVE,)),
    ("private-use-authority", "com.example.app://callback/path", (NATIVE,)),
    ("private-use-not-reverse-domain", "myapp://callback", ()),
    ("private-use-no-path", "com.example.app:callback", ()),
    ("private-use-fragment", "com.example.app:/cb#x", ()),
    # Never.
    ("javascript", "javascript:alert(document.cookie)", ()),
    ("javascript-upper", "JavaScript://app.example.com/%0aalert(1)", ()),
    ("data", "data:text/html,<script>alert(1)</script>", ()),
    ("file", "file:///etc/passwd", ()),
    ("relative", "/cb", ()),
]
CASES = [pytest.param(uri, allowed, id=case_id) for case_id, uri, allowed in MATRIX]


def _register(uri: str, kind: str) -> Any:
    metadata = {
        "client_name": "Policy test",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://app.example.com/first", uri],
        "token_endpoint_auth_method": "none" if kind == NATIVE else "client_secret_basic",
    }
    return HttpClient().post("/t/acme/oauth/register", json.dumps(metadata), content_type="application/json")


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize(("uri", "allowed"), CASES)
def test_dynamic_registration_applies_the_policy(in_acme, kind: str, uri: str, allowed: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    response = _register(uri, kind)
    if kind in allowed:
        assert response.status_code == 201, response.content
        assert uri in Client.objects.get(client_id=response.json()["client_id"]).redirect_uris.split()
    else:
        assert response.status_code == 400, response.content
        body = response.json()
        assert body["error"] == "invalid_redirect_uri", body
        assert body["error_description"] and "Traceback" not in body["error_description"]
        assert not Client.objects.filter(name="Policy test").exists()


@pytest.fixture
def dashboard(in_acme) -> HttpClient:  # type: ignore[no-untyped-def]
    browser = HttpClient()
    browser.force_login(User.objects.get(email="admin@acme.test"))
    return browser


def _add_client_form(uri: str, kind: str) -> dict[str, str]:
    return {
        "client_id": f"policy-{uuid.uuid4().hex}",
        "name": "Policy test",
        "client_type": Client.CLIENT_PUBLIC if kind == NATIVE else Client.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Client.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": f"https://app.example.com/first\n{uri}",
        "post_logout_redirect_uris": "",
        "allowed_origins": "",
        "client_secret": "" if kind == NATIVE else "s3cret-" + uuid.uuid4().hex,
        "hash_client_secret": "on",
        "algorithm": Client.RS256_ALGORITHM,
        "status": Client.Status.ACTIVE,
        "registration_source": "manual",
        "description": "",
    }


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize(("uri", "allowed"), CASES)
def test_dashboard_client_form_applies_the_policy(dashboard, kind: str, uri: str, allowed: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    response = dashboard.post("/t/acme/admin/oauth/client/add/", _add_client_form(uri, kind))
    if kind in allowed:
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert Client.objects.filter(name="Policy test").count() == 1
    else:
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == ["redirect_uris"], errors
        assert "https://app.example.com/first" not in str(errors["redirect_uris"])  # the good one is not blamed
        assert not Client.objects.filter(name="Policy test").exists()


class _DocumentHost(TenantCIMDFetcher):
    """Stands in for the client's web server (a third party): answers the CIMD document the test put up."""

    documents: dict[str, dict[str, Any]] = {}

    def fetch(self, client_id: str) -> Any:
        return self.documents[client_id], 60


@pytest.mark.parametrize(("uri", "allowed"), CASES)
def test_client_id_metadata_documents_apply_the_policy(in_acme, settings, uri: str, allowed: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "CIMD_METADATA_FETCHER": f"{__name__}._DocumentHost",
    }
    ProviderSettings.objects.update_or_create(pk=1, defaults={"allow_cimd": True})
    client_id = f"https://tools.example.com/{uuid.uuid4().hex}/client.json"  # a fresh id: no failure back-off
    _DocumentHost.documents[client_id] = {"client_id": client_id, "client_name": "CIMD tool", "redirect_uris": [uri]}
    request = OauthlibRequest("https://issuer.example/authorize")
    application = cimd.resolve_cimd_application(client_id, request)
    if NATIVE in allowed:  # CIMD clients are always public
        assert application is not None and application.redirect_uris == uri
    else:
        assert application is None
        assert not Client.objects.filter(client_id=client_id).exists()


@pytest.mark.parametrize(
    ("uri", "client_type"),
    [
        pytest.param("http://evil.example/cb", Client.CLIENT_PUBLIC, id="plain-http-other-host"),
        pytest.param("https://good.example@evil.example/cb", Client.CLIENT_CONFIDENTIAL, id="userinfo"),
        pytest.param("com.example.app:/cb", Client.CLIENT_CONFIDENTIAL, id="private-use-web-client"),
    ],
)
def test_existing_client_with_a_refused_uri_gets_no_code(demo_users, uri: str, client_type: str) -> None:  # type: ignore[no-untyped-def]
    # Saved without `clean` (as rows written before the policy were): /authorize refuses the URI anyway.
    legacy = OAuthClientFactory(
        name="Legacy",
        client_type=client_type,
        redirect_uris=uri,
        client_secret="" if client_type == Client.CLIENT_PUBLIC else "a-secret",
    )
    _verifier, challenge = pkce()
    browser = login("alice@acme.test")
    # With the URI, and without (oauthlib then takes the registered one, without asking `redirect_uri_allowed`).
    for redirect_uri in (uri, None):
        params = authorize_params(legacy, challenge, redirect_uri=redirect_uri)  # type: ignore[arg-type]
        response = browser.get("/t/acme/oauth/authorize?" + urlencode(params))
        assert response.status_code == 400, response.get("Location")
        assert not response.has_header("Location")
        assert "<code>invalid_request</code>" in response.content.decode()


def test_native_client_is_redirected_to_its_private_use_scheme(demo_users) -> None:  # type: ignore[no-untyped-def]
    uri = "com.example.app:/oauth2redirect"
    native = OAuthClientFactory(name="Phone app", redirect_uris=uri)
    _verifier, challenge = pkce()
    params = authorize_params(native, challenge, redirect_uri=uri)
    browser = login("alice@acme.test")
    browser.get("/t/acme/oauth/authorize?" + urlencode(params))
    response = browser.post("/t/acme/oauth/authorize?" + urlencode(params), {**params, "allow": "Authorize"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"].startswith(uri + "?code=")


def test_development_setting_allows_plain_http_to_any_host_and_nothing_else(in_acme, settings) -> None:  # type: ignore[no-untyped-def]
    assert _register("http://evil.example/cb", WEB).status_code == 400  # off by default
    settings.OAUTH_ALLOW_INSECURE_REDIRECT_URIS = True
    assert _register("http://dev-box.lan:8080/cb", WEB).status_code == 201
    for still_refused in ("http://good.example@evil.example/cb", "http://dev-box.lan/cb#x", "javascript:alert(1)"):
        assert _register(still_refused, WEB).json()["error"] == "invalid_redirect_uri"


def test_registration_update_applies_the_policy(in_acme) -> None:  # type: ignore[no-untyped-def]
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": "open"})
    registered = _register("https://app.example.com/cb", WEB).json()
    metadata = {
        "client_name": "Policy test",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["http://evil.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    path = f"/t/acme/oauth/register/{registered['client_id']}"
    anonymous = HttpClient().put(path, json.dumps(metadata), content_type="application/json")
    assert anonymous.status_code == 401  # no token: nothing about the metadata
    response = HttpClient().put(
        path,
        json.dumps(metadata),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {registered['registration_access_token']}",
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_redirect_uri"
    assert Client.objects.get(client_id=registered["client_id"]).redirect_uris == (
        "https://app.example.com/first https://app.example.com/cb"
    )


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("https://app.example.com/logged-out", True),
        ("http://127.0.0.1:8765/logged-out", True),
        ("http://evil.example/logged-out", False),
        ("javascript:alert(1)", False),
        ("https://app.example.com/logged-out#frag", False),
    ],
)
def test_post_logout_redirect_uris_follow_the_same_policy(dashboard, uri: str, accepted: bool) -> None:  # type: ignore[no-untyped-def]
    form = {**_add_client_form("https://app.example.com/cb", WEB), "post_logout_redirect_uris": uri}
    response = dashboard.post("/t/acme/admin/oauth/client/add/", form)
    if accepted:
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert Client.objects.get(name="Policy test").post_logout_redirect_uri_allowed(uri)
    else:
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert list(errors) == ["post_logout_redirect_uris"], errors
        assert not Client.objects.filter(name="Policy test").exists()
    # A row written around the form (older data) still never sends anyone to a refused URI.
    stored = Client(client_type=Client.CLIENT_CONFIDENTIAL, post_logout_redirect_uris=uri)
    assert stored.post_logout_redirect_uri_allowed(uri) is accepted
