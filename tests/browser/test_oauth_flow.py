"""In a real browser: sign in, consent, get a code; exchange it with PKCE; the JWT carries the user's grants."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2
import jwt
import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from oauth.models import Client, Consent
from rbac.demo import DEMO, seed_rbac
from rbac.models import Application, Group, Resource, Role, Scope
from tests.factories import OAuthClientFactory, UserFactory
from tests.support.axe import assert_accessible, tab_through, tab_to
from tests.support.live import LiveServer
from tests.support.oauth import PASSWORD, pkce
from tests.support.screenshots import save_docs_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]
REDIRECT = "http://127.0.0.1:9/callback"  # nothing listens: the browser's address bar still shows the code


@pytest.fixture(scope="module")
def committed(django_db_setup, django_db_blocker) -> Iterator[str]:  # type: ignore[no-untyped-def]
    emails = list(DEMO["acme"]["users"])
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        for email in emails:
            user = UserFactory(email=email)
            user.set_password(PASSWORD)
            user.save()
        seed_rbac("acme")
        client = OAuthClientFactory(name="Browser test client", redirect_uris=REDIRECT)
        client_id = client.client_id
    yield client_id
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        Consent.objects.all().delete()
        Client.objects.filter(client_id=client_id).delete()
        Application.objects.filter(slug="demo").delete()
        for model in (Role, Group, Scope, Resource):
            model.objects.all().delete()
        User.objects.filter(email__in=emails).delete()


def test_authorization_code_flow_with_pkce_in_a_browser(browser, asgi_server: LiveServer, committed: str) -> None:  # type: ignore[no-untyped-def]
    base = asgi_server.url
    resource = f"{base}/t/acme/mcp/demo"
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": committed,
        "redirect_uri": REDIRECT,
        "scope": "openid email read",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "browser-state",
        "resource": resource,
    }
    browser.get(f"{base}/t/acme/oauth/authorize?{urlencode(params)}")

    # Not signed in: the tenant's login page, showing the tenant's name.
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "sign-in")))
    assert "Sign in to Acme Corp" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.NAME, "username").send_keys("dave@acme.test")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()

    # Consent: client name, redirect host and the requested scopes dave can be granted (he does not hold "read",
    # so the page does not offer it: it lists what the token will carry).
    allow = WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.ID, "allow")))
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Allow Browser test client?" in page
    assert "127.0.0.1:9" in page
    listed = browser.find_element(By.ID, "requested-scopes").text
    assert "See your email address" in listed and "Use the 'read' scope" not in listed
    assert_accessible(browser, "consent page")
    tab_through(browser)
    save_docs_screenshot(browser, "oauth-consent")
    tab_to(browser, allow).send_keys(Keys.ENTER)  # by keyboard

    WebDriverWait(browser, 10).until(lambda b: b.current_url.startswith(REDIRECT))
    query = parse_qs(urlparse(browser.current_url).query)
    assert query["state"] == ["browser-state"]
    assert query["iss"] == [f"{base}/t/acme/oauth"]

    token = httpx2.post(
        f"{base}/t/acme/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": committed,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    jwks = httpx2.get(f"{base}/t/acme/oauth/jwks").json()
    kid = jwt.get_unverified_header(access)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    claims = jwt.decode(access, key, algorithms=["RS256"], audience=resource, issuer=f"{base}/t/acme/oauth")
    # dave's demo grants, exactly.
    assert claims["email"] == "dave@acme.test"
    assert claims["roles"] == ["superuser"]
    assert claims["groups"] == ["security-team"]
    assert claims["scopes"] == ["admin"]
    assert claims["resources"] == ["production", "sensitive-data"]
    assert claims["scope"] == "openid email"  # dave does not hold "read": the token does not claim it
    assert claims["tenant_id"] == "acme"
