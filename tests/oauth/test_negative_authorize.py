"""Negative matrix, authorization endpoint: each refusal with its exact OAuth error, and whether it goes back
to the client (a redirect carrying `error` and the RFC 9207 `iss`) or stays on our error page (RFC 6749
§4.1.2.1: never redirect to an unverified redirect URI)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client as HttpClient

from oauth.models import Client
from tests.factories import OAuthClientFactory
from tests.support.oauth import (
    LOOPBACK_NATIVE,
    PASSWORD,
    REDIRECT,
    WEB_REDIRECT,
    authorize_params,
    exchange,
    get_code,
    login,
    mcp_url,
    pkce,
)

pytestmark = pytest.mark.django_db
ISSUER = f"{settings.AUTHSEC_PUBLIC_URL}/t/acme/oauth"
AUTHORIZE = "/t/acme/oauth/authorize"
LOGIN = "/t/acme/accounts/login/"


def _authorize(browser: HttpClient, client: Client, challenge: str, **extra: str | None) -> HttpResponse:
    """GET authorize; when the consent page is shown, allow (so errors raised only on consent surface too)."""
    params = authorize_params(client, challenge, **extra)  # type: ignore[arg-type]
    response = browser.get(f"{AUTHORIZE}?{urlencode(params)}")
    if response.status_code == 200 and "consent-form" in response.content.decode():
        response = browser.post(f"{AUTHORIZE}?{urlencode(params)}", {**params, "allow": "Authorize"})
    return response


def assert_error_redirect(response: HttpResponse, redirect_uri: str, error: str) -> dict[str, list[str]]:
    """The error went back to the client's (verified) redirect URI, with `state` and RFC 9207 `iss`."""
    assert response.status_code == 302, response.content.decode()[:2000]
    location = urlparse(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    query = parse_qs(location.query)
    assert query["error"] == [error], query
    assert query["iss"] == [ISSUER]
    assert query["state"] == ["st-123"]
    assert "code" not in query
    return query


def assert_error_page(response: HttpResponse, error: str) -> None:
    """Shown to the user, never redirected: the redirect URI (or client) could not be trusted."""
    assert response.status_code == 400, (response.status_code, response.get("Location"))
    assert not response.has_header("Location")
    body = response.content.decode()
    assert "This sign-in request cannot continue" in body
    assert f"<code>{error}</code>" in body, body[:3000]


@pytest.fixture
def native(in_acme) -> Client:  # type: ignore[no-untyped-def]
    """A public native client registered with a loopback redirect without port (RFC 8252 §7.3)."""
    return OAuthClientFactory(name="Native CLI", redirect_uris=LOOPBACK_NATIVE)


# --- PKCE ---------------------------------------------------------------------------------------------------------


def test_refuses_plain_code_challenge_method(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    verifier, _challenge = pkce()
    browser = login("alice@acme.test")
    params = authorize_params(clients.public, verifier, code_challenge_method="plain")
    response = browser.get(f"{AUTHORIZE}?{urlencode(params)}")
    # Refused before the consent page (RFC 7636 §4.4.1: invalid_request), sent back to the client.
    query = assert_error_redirect(response, REDIRECT, "invalid_request")
    assert "S256" in query["error_description"][0]


def test_refuses_authorization_request_without_code_challenge(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser = login("alice@acme.test")
    params = authorize_params(clients.public, "", code_challenge=None, code_challenge_method=None)
    response = browser.get(f"{AUTHORIZE}?{urlencode(params)}")
    query = assert_error_redirect(response, REDIRECT, "invalid_request")
    assert query["error_description"] == ["Code challenge required."]


def test_refuses_challenge_without_method_other_than_s256(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # No method means "plain" (RFC 7636 §4.3), which is refused like an explicit "plain".
    _verifier, challenge = pkce()
    response = login("alice@acme.test").get(
        f"{AUTHORIZE}?{urlencode(authorize_params(clients.public, challenge, code_challenge_method=None))}"
    )
    assert_error_redirect(response, REDIRECT, "invalid_request")


# --- Redirect URIs: exact match, never a redirect to an unregistered URI ----------------------------------------


MISMATCH, INVALID = "Mismatching redirect URI.", "Invalid redirect URI."


@pytest.mark.parametrize(
    ("redirect_uri", "description"),
    [
        pytest.param("https://evil.example.com/cb", MISMATCH, id="other-host"),
        pytest.param("https://app.example.com/c", MISMATCH, id="prefix"),
        pytest.param("https://app.example.com/cb#frag", INVALID, id="fragment"),
        pytest.param("https://app.example.com/cb/extra", MISMATCH, id="extra-path"),
        pytest.param("https://app.example.com/cb?x=1", MISMATCH, id="extra-query"),
        pytest.param("https://app.example.com:8443/cb", MISMATCH, id="other-port"),
        pytest.param("http://app.example.com/cb", MISMATCH, id="other-scheme"),
        pytest.param("https://user@app.example.com/cb", INVALID, id="userinfo"),
        pytest.param("/cb", INVALID, id="relative"),
    ],
)
def test_shows_error_page_for_unregistered_redirect_uri(demo_users, clients, redirect_uri, description) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = login("alice@acme.test").get(
        f"{AUTHORIZE}?{urlencode(authorize_params(clients.confidential, challenge, redirect_uri=redirect_uri))}"
    )
    assert_error_page(response, "invalid_request")
    assert description in response.content.decode()


def test_registered_redirect_uri_is_accepted(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = login("alice@acme.test").get(
        f"{AUTHORIZE}?{urlencode(authorize_params(clients.confidential, challenge, redirect_uri=WEB_REDIRECT))}"
    )
    assert response.status_code == 200
    assert "Allow Web app?" in response.content.decode()


def test_shows_error_page_for_unknown_client(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    params = authorize_params(clients.public, challenge, client_id="no-such-client")
    response = login("alice@acme.test").get(f"{AUTHORIZE}?{urlencode(params)}")
    assert_error_page(response, "invalid_request")


def test_loopback_redirect_may_use_any_port(demo_users, native) -> None:  # type: ignore[no-untyped-def]
    # RFC 8252 §7.3: registered as http://127.0.0.1/callback, requested with the ephemeral port it listens on.
    verifier, challenge = pkce()
    browser = login("alice@acme.test")
    code, query = get_code(browser, native, challenge, redirect_uri="http://127.0.0.1:54321/callback")
    assert code
    assert query["iss"] == [ISSUER]
    response = exchange(native, code, verifier, redirect_uri="http://127.0.0.1:54321/callback")
    assert response.status_code == 200, response.content
    # The token request must repeat the exact redirect URI of the authorization request, port included.
    code2, _ = get_code(browser, native, challenge, redirect_uri="http://127.0.0.1:54321/callback")
    other_port = exchange(native, code2, verifier, redirect_uri="http://127.0.0.1:54322/callback")
    assert other_port.status_code == 400
    assert other_port.json()["error"] == "invalid_request"
    assert other_port.json()["error_description"] == "Mismatching redirect URI."


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("http://127.0.0.1:54321/other", id="other-path"),
        pytest.param("http://127.0.0.1:54321/callback/x", id="extra-path"),
        pytest.param("http://localhost:54321/callback", id="localhost-is-not-127.0.0.1"),
        pytest.param("http://127.0.0.2:54321/callback", id="other-loopback-address"),
        pytest.param("https://127.0.0.1:54321/callback", id="other-scheme"),
    ],
)
def test_loopback_redirect_must_match_except_port(demo_users, native, redirect_uri: str) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    params = authorize_params(native, challenge, redirect_uri=redirect_uri)
    response = login("alice@acme.test").get(f"{AUTHORIZE}?{urlencode(params)}")
    assert_error_page(response, "invalid_request")


# --- Other refusals -----------------------------------------------------------------------------------------------


def test_unknown_resource_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = _authorize(
        login("alice@acme.test"), clients.public, challenge, resource="https://elsewhere.example.com/mcp/x"
    )
    query = assert_error_redirect(response, REDIRECT, "invalid_target")
    assert "https://elsewhere.example.com/mcp/x" in query["error_description"][0]


def test_another_tenants_resource_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = _authorize(login("alice@acme.test"), clients.public, challenge, resource=mcp_url("globex", "demo"))
    assert_error_redirect(response, REDIRECT, "invalid_target")


def test_malformed_resource_is_invalid_target(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = _authorize(login("alice@acme.test"), clients.public, challenge, resource="not-a-uri")
    assert_error_redirect(response, REDIRECT, "invalid_target")


def test_unknown_scope_is_invalid_scope(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = _authorize(login("alice@acme.test"), clients.public, challenge, scope="openid no-such-scope")
    assert_error_redirect(response, REDIRECT, "invalid_scope")


def test_denied_consent_is_access_denied(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    browser = login("alice@acme.test")
    params = authorize_params(clients.public, challenge)
    assert browser.get(f"{AUTHORIZE}?{urlencode(params)}").status_code == 200
    response = browser.post(f"{AUTHORIZE}?{urlencode(params)}", params)  # no "allow": the Deny button
    assert_error_redirect(response, REDIRECT, "access_denied")


@pytest.mark.parametrize(
    ("response_type", "error"),
    [
        # The implicit grant exists in oauthlib but no client of ours may use it (RFC 9700 §2.1.2).
        pytest.param("token", "unauthorized_client", id="implicit"),
        pytest.param("code token", "unauthorized_client", id="hybrid"),
        pytest.param("bogus", "unsupported_response_type", id="unknown"),
    ],
)
def test_refuses_response_types_other_than_code(demo_users, clients, response_type, error) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = _authorize(login("alice@acme.test"), clients.public, challenge, response_type=response_type)
    assert_error_redirect(response, REDIRECT, error)


def test_anonymous_user_is_sent_to_login_first(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce()
    response = HttpClient().get(f"{AUTHORIZE}?{urlencode(authorize_params(clients.public, challenge))}")
    assert response.status_code == 302
    assert urlparse(response["Location"]).path == "/t/acme/accounts/login/"


def test_consent_form_without_csrf_token_is_forbidden(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    browser = HttpClient(enforce_csrf_checks=True)
    browser.get(LOGIN)
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    form = {"username": "alice@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert browser.post(LOGIN, form).status_code == 302
    _verifier, challenge = pkce()
    params = authorize_params(clients.public, challenge)
    url = "/t/acme/oauth/authorize?" + urlencode(params)
    assert browser.get(url).status_code == 200
    response = browser.post(url, {**params, "allow": "Authorize"})  # no csrfmiddlewaretoken
    assert response.status_code == 403
