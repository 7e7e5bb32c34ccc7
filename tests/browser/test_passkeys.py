"""Passkeys in real Chromium with its virtual authenticator (WebDriver's WebAuthn commands): a user adds one on the
security page and later steps up with it; a tenant that requires a second factor of staff sends its admin through
passkey set-up at the first dashboard login and asks for the passkey at the next.

WebAuthn refuses IP addresses as relying-party ids, so the browser opens the live server as `localhost`: the RP id
follows the host the tenant is reached at (docs/mfa.md)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.virtual_authenticator import Protocol, Transport, VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import MfaSettings, Passkey, User
from audit.models import AuditEvent
from tests.browser.conftest import wait_until_gone
from tests.factories import UserFactory
from tests.support.accounts import FACTORY_PASSWORD
from tests.support.axe import assert_accessible, tab_through, tab_to
from tests.support.live import LiveServer
from tests.support.screenshots import save_docs_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

USER = "passkey-user@acme.test"
STAFF = "passkey-staff@acme.test"
TWIN = "passkey-twin@acme.test"


@pytest.fixture(scope="module")
def people(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """An end user and a staff member of acme, with acme requiring a second factor of staff, committed so the
    server process sees them; removed afterwards (their passkeys and codes go with them), setting put back."""
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        UserFactory(email=USER)
        UserFactory(email=STAFF, is_staff=True, is_superuser=True)
        UserFactory(email=TWIN)
        MfaSettings.objects.all().delete()
        MfaSettings.objects.create(require_for_staff=True)  # acme requires a second factor of its staff
    with django_db_blocker.unblock(), schema_context("tenant_globex"):
        UserFactory(email=TWIN)  # globex's own user with the same address as acme's
    yield
    with django_db_blocker.unblock(), schema_context("tenant_globex"):
        User.objects.filter(email=TWIN).delete()
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        User.objects.filter(email__in=[USER, STAFF, TWIN]).delete()
        MfaSettings.objects.all().delete()


def _base(server: LiveServer) -> str:
    return f"http://localhost:{urlsplit(server.url).port}"


@pytest.fixture
def authenticator(browser) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A platform authenticator (like a phone's or a laptop's) that verifies its user; gone after the test."""
    options = VirtualAuthenticatorOptions(
        protocol=Protocol.CTAP2,
        transport=Transport.INTERNAL,
        has_resident_key=True,
        has_user_verification=True,
        is_user_verified=True,
    )
    browser.add_virtual_authenticator(options)
    yield
    browser.remove_virtual_authenticator()


def _sign_in(browser, url: str, email: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(FACTORY_PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]")
    submit.click()
    wait_until_gone(browser, submit)


def _click_and_wait_for(browser, element_id: str, until, keyboard: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Press the button (with `keyboard`: Tab to it and press Enter) and wait for `until`."""
    button = browser.find_element(By.ID, element_id)
    if keyboard:
        tab_to(browser, button).send_keys(Keys.ENTER)
    else:
        button.click()
    try:
        WebDriverWait(browser, 20).until(until)
    except Exception:
        status = browser.find_elements(By.ID, "passkey-status")
        raise AssertionError(f"{browser.current_url}: {status[0].text if status else browser.page_source[:2000]}")


def _passkeys(email: str) -> list[Passkey]:
    with schema_context("tenant_acme"):
        return list(Passkey.objects.filter(user__email=email))


def _verified_by_passkey(email: str) -> int:
    with schema_context("tenant_acme"):
        return AuditEvent.objects.filter(
            action="accounts.mfa_verified", target_label=email, data__method="passkey"
        ).count()


def test_a_user_adds_a_passkey_and_steps_up_with_it(browser, asgi_server: LiveServer, people, authenticator) -> None:  # type: ignore[no-untyped-def]
    base = _base(asgi_server)
    _sign_in(browser, f"{base}/t/acme/accounts/login/?next=/t/acme/account/security/", USER)
    assert browser.current_url == f"{base}/t/acme/account/security/"
    assert_accessible(browser, "security page")
    tab_through(browser)
    save_docs_screenshot(browser, "account-security")

    _click_and_wait_for(browser, "passkey-add", lambda b: b.find_elements(By.CSS_SELECTOR, "li.passkey"), keyboard=True)
    # The first factor brings recovery codes, shown once.
    assert len(browser.find_elements(By.CSS_SELECTOR, ".recovery-code")) == 10
    assert_accessible(browser, "security page with a passkey and recovery codes")
    save_docs_screenshot(browser, "account-security-passkey")
    (stored,) = _passkeys(USER)
    assert stored.rp_id == "localhost"
    (credential,) = browser.get_credentials()
    assert credential.rp_id == "localhost"
    assert base64.urlsafe_b64decode(credential.id) == bytes(stored.credential_id)

    # A new session: the step-up page asks, the passkey answers, and the page goes on to `next`.
    browser.delete_all_cookies()
    _sign_in(browser, f"{base}/t/acme/accounts/login/", USER)
    before = _verified_by_passkey(USER)
    browser.get(f"{base}/t/acme/account/verify/?next=/t/acme/account/security/%3Fdone%3D1")
    assert_accessible(browser, "second-factor verify page")
    tab_through(browser)
    save_docs_screenshot(browser, "mfa-verify")
    _click_and_wait_for(browser, "use-passkey", lambda b: "done=1" in b.current_url, keyboard=True)
    assert browser.find_elements(By.ID, "passkey-add")  # verified: the page lets the user change factors
    assert not browser.find_elements(By.ID, "step-up-needed")
    assert _verified_by_passkey(USER) == before + 1
    (used,) = _passkeys(USER)
    assert used.last_used_at is not None and used.sign_count >= stored.sign_count

    # Without the authenticator's key the passkey cannot answer: the page says so and stays.
    browser.remove_all_credentials()
    browser.get(f"{base}/t/acme/account/verify/?next=/t/acme/account/security/")
    browser.find_element(By.ID, "use-passkey").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "passkey-status").text)
    assert "not accepted" in browser.find_element(By.ID, "passkey-status").text
    assert "/account/verify/" in browser.current_url
    assert_accessible(browser, "second-factor verify page with a refused passkey")


def test_staff_set_up_a_passkey_at_first_login_and_use_it_at_the_next(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, people, authenticator
) -> None:
    base = _base(asgi_server)

    _sign_in(browser, f"{base}/t/acme/admin/login/", STAFF)
    # The dashboard login ends on the security page: a second factor is required and there is none yet.
    assert browser.current_url.startswith(f"{base}/t/acme/account/security/?next=")
    assert browser.find_element(By.ID, "mfa-required")
    assert_accessible(browser, "security page requiring a second factor")
    _click_and_wait_for(browser, "passkey-add", lambda b: b.find_elements(By.CSS_SELECTOR, "li.passkey"))
    browser.find_element(By.ID, "continue").click()
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.ID, "site-name"))
    assert browser.current_url == f"{base}/t/acme/admin/"

    # The next login asks for the passkey before the dashboard opens.
    browser.delete_all_cookies()
    _sign_in(browser, f"{base}/t/acme/admin/login/", STAFF)
    assert browser.current_url.startswith(f"{base}/t/acme/account/verify/?next=")
    assert not browser.find_elements(By.ID, "site-name")
    _click_and_wait_for(browser, "use-passkey", lambda b: b.find_elements(By.ID, "site-name"))
    assert browser.current_url == f"{base}/t/acme/admin/"


# Runs the ceremony by hand: ask the tenant for options, let the authenticator answer (a discoverable credential
# when the tenant names none), post the answer back.
_CEREMONY = """
const [optionsUrl, verifyUrl, done] = arguments;
(async () => {
  try {
    const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
    const post = (url, body) => fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: JSON.stringify(body || {})});
    const options = await (await post(optionsUrl)).json();
    const credential = await navigator.credentials.get(
      {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)});
    const answer = await post(verifyUrl, {credential: credential.toJSON()});
    done({status: answer.status, allowed: options.publicKey.allowCredentials || [], body: await answer.json()});
  } catch (error) { done({error: String(error)}); }
})();
"""


def test_an_acme_passkey_is_refused_in_globex(browser, asgi_server: LiveServer, people, authenticator) -> None:  # type: ignore[no-untyped-def]
    base = _base(asgi_server)
    _sign_in(browser, f"{base}/t/acme/accounts/login/?next=/t/acme/account/security/", TWIN)
    _click_and_wait_for(browser, "passkey-add", lambda b: b.find_elements(By.CSS_SELECTOR, "li.passkey"))
    assert len(browser.get_credentials()) == 1  # a discoverable credential for rp id "localhost"

    # Same host, same email, another tenant: globex offers no passkey, and the acme key it is handed is unknown.
    _sign_in(browser, f"{base}/t/globex/accounts/login/?next=/t/globex/account/verify/", TWIN)
    assert not browser.find_elements(By.ID, "use-passkey")
    result = browser.execute_async_script(
        _CEREMONY, "/t/globex/account/passkeys/verify/options", "/t/globex/account/passkeys/verify"
    )
    assert result.get("status") == 400 and result["allowed"] == [], result
    with schema_context("tenant_globex"):
        refused = AuditEvent.objects.filter(action="accounts.mfa_verification_failed", target_label=TWIN).latest("seq")
        assert refused.data["reason"] == "Unknown credential ID."
        assert not AuditEvent.objects.filter(action="accounts.mfa_verified", target_label=TWIN).exists()
