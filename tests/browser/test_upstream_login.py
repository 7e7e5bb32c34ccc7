"""In a real browser: globex (another tenant of this server) is acme's upstream identity provider.

A person who has only a globex account clicks "Sign in with Globex" on acme's login page, signs in and consents
at globex, and lands back in acme signed in as a new acme user created from globex's verified email. The acme
callback calls globex's token and JWKS endpoints over HTTP on the same single uvicorn process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from audit.models import AuditEvent
from oauth.models import Client, UpstreamProvider
from oauth.upstream_services import delete_upstream_provider, save_upstream_provider
from tests.browser.conftest import wait_until_gone
from tests.factories import OAuthClientFactory, UserFactory
from tests.support.audit import wait_for_event
from tests.support.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

EMAIL = "new.person@acme-partner.test"
PASSWORD = "globex-user-password-1"
SLUG = "globex-idp"


@dataclass
class Federation:
    client_id: str
    provider_pk: int


@pytest.fixture(scope="module")
def globex_as_upstream(django_db_setup, django_db_blocker, asgi_server: LiveServer) -> Iterator[Federation]:  # type: ignore[no-untyped-def]
    """Committed (the server process must see it): a confidential client and a user in globex, and the
    "Globex" upstream provider in acme with the client's secret in Vault. Removed again afterwards."""
    secret = secrets.token_urlsafe(32)
    with django_db_blocker.unblock():
        with schema_context("tenant_globex"):
            client = OAuthClientFactory(
                confidential=True,
                name="Acme Corp sign-in",
                redirect_uris=f"{asgi_server.url}/t/acme/accounts/upstream/{SLUG}/callback",
                client_secret=secret,
            )
            person = UserFactory(email=EMAIL, full_name="New Person")
            person.set_password(PASSWORD)
            person.save()
        with schema_context("tenant_acme"):
            provider = save_upstream_provider(
                actor="tests",
                provider=UpstreamProvider(
                    name="Globex",
                    slug=SLUG,
                    issuer=f"{asgi_server.url}/t/globex/oauth",
                    client_id=client.client_id,
                    auto_create_users=True,
                ),
                client_secret=secret,
            )
    yield Federation(client_id=client.client_id, provider_pk=provider.pk)
    with django_db_blocker.unblock():
        with schema_context("tenant_acme"):
            for leftover in UpstreamProvider.objects.filter(slug=SLUG):
                delete_upstream_provider(actor="tests", provider=leftover)
            User.objects.filter(email=EMAIL).delete()
        with schema_context("tenant_globex"):
            Client.objects.filter(client_id=client.client_id).delete()
            User.objects.filter(email=EMAIL).delete()


def _click_and_wait(browser, element) -> None:  # type: ignore[no-untyped-def]
    element.click()
    wait_until_gone(browser, element)


def test_signs_in_to_acme_with_a_globex_account(browser, asgi_server: LiveServer, globex_as_upstream) -> None:  # type: ignore[no-untyped-def]
    with schema_context("tenant_acme"):
        assert not User.objects.filter(email=EMAIL).exists()

    browser.get(f"{asgi_server.url}/t/acme/accounts/login/")
    button = browser.find_element(By.LINK_TEXT, "Sign in with Globex")
    _click_and_wait(browser, button)

    # At globex: its own login page (acme's session is not sent here: cookies are scoped per tenant).
    assert browser.current_url.startswith(f"{asgi_server.url}/t/globex/accounts/login/"), browser.current_url
    assert "Globex Corporation" in browser.page_source
    browser.find_element(By.NAME, "username").send_keys(EMAIL)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    _click_and_wait(browser, browser.find_element(By.ID, "sign-in"))

    # Globex asks for consent on behalf of its client "Acme Corp sign-in".
    assert "Allow Acme Corp sign-in?" in browser.page_source, browser.page_source[:3000]
    _click_and_wait(browser, browser.find_element(By.ID, "allow"))

    # Back at acme (the callback redeemed the code at globex, verified the ID token): signed in.
    WebDriverWait(browser, 20).until(expected_conditions.url_to_be(f"{asgi_server.url}/t/acme/"))
    assert "Signed in to Acme Corp" in browser.page_source, browser.page_source[:3000]
    assert EMAIL in browser.find_element(By.TAG_NAME, "main").text

    with schema_context("tenant_acme"):
        user = User.objects.get(email=EMAIL)
        assert (user.full_name, user.has_usable_password(), user.is_staff) == ("New Person", False, False)
        login = AuditEvent.objects.get(action="auth.login_succeeded", actor_id=str(user.pk))
        assert login.data["via"] == f"upstream:{SLUG}"
        assert login.actor_label == EMAIL
        created = AuditEvent.objects.get(action="accounts.user_created", target_id=str(user.pk))
        assert created.data["via"] == f"upstream:{SLUG}"
    # Globex's token endpoint hands its issuance event to the server's audit pipeline, which writes it off the path.
    wait_for_event("tenant_globex", action="oauth.token_issued", actor_label=EMAIL)

    # Signed out of acme only: the next "Sign in with Globex" needs neither a password (still signed in at
    # globex) nor a new consent (remembered there), and finds the user instead of creating another.
    _click_and_wait(browser, browser.find_element(By.ID, "sign-out"))
    assert "You are signed out of Acme Corp" in browser.page_source
    browser.get(f"{asgi_server.url}/t/acme/accounts/login/?next=/t/acme/")
    _click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Sign in with Globex"))
    WebDriverWait(browser, 20).until(expected_conditions.url_to_be(f"{asgi_server.url}/t/acme/"))
    assert "Signed in to Acme Corp" in browser.page_source
    with schema_context("tenant_acme"):
        assert User.objects.filter(email=EMAIL).count() == 1
        assert AuditEvent.objects.filter(action="auth.login_succeeded", actor_label=EMAIL).count() == 2
