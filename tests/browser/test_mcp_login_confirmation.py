"""In a real browser: an `oauth_start` login ends on the confirmation page, where the user types the code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from tests.browser.conftest import wait_until_gone
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, Committed, url
from tests.support.mcp_login import ATTACKER_AGENT, mcp, start_as, status
from tests.support.oauth import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture(scope="module", autouse=True)
def cleanup(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]  # noqa: F811
    yield
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        AuthSession.objects.all().delete()
        OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()


def test_login_tool_sign_in_is_confirmed_on_the_page_with_the_typed_code(  # type: ignore[no-untyped-def]
    browser,
    asgi_server: LiveServer,
    committed: Committed,  # noqa: F811 - the fixture
) -> None:
    endpoint = url(asgi_server)
    started = start_as(endpoint)
    browser.get(started["authorization_url"])

    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "sign-in")))
    browser.find_element(By.NAME, "username").send_keys("carol@acme.test")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.ID, "allow") or b.find_elements(By.ID, "confirm-form")
    )
    if browser.find_elements(By.ID, "allow"):
        allow = browser.find_element(By.ID, "allow")
        allow.click()
        wait_until_gone(browser, allow)

    # The callback did not sign anyone in: the confirmation page names the session.
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "confirm-form")))
    assert "/t/acme/mcp-login/confirm?state=" in browser.current_url
    assert browser.find_element(By.ID, "confirm-application").text == "Demo tools"
    assert browser.find_element(By.ID, "confirm-endpoint").text == endpoint
    assert browser.find_element(By.ID, "confirm-ip").text == "127.0.0.1"
    assert browser.find_element(By.ID, "confirm-user-agent").text == ATTACKER_AGENT
    assert browser.find_element(By.ID, "confirm-started").text.startswith("20")
    assert started["user_code"] not in browser.find_element(By.TAG_NAME, "main").text
    assert status(endpoint, started["session_id"]) == "pending"

    # A wrong code: the page again, with an error, still pending.
    browser.find_element(By.ID, "user-code").send_keys("BBBB-BBBC")
    confirm = browser.find_element(By.ID, "confirm")
    confirm.click()
    wait_until_gone(browser, confirm)
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "confirm-error")))
    assert status(endpoint, started["session_id"]) == "pending"

    browser.find_element(By.ID, "user-code").send_keys(started["user_code"])
    confirm = browser.find_element(By.ID, "confirm")
    confirm.click()
    wait_until_gone(browser, confirm)
    title = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "mcp-login-title"))
    )
    assert title.text == "Signed in"
    assert status(endpoint, started["session_id"]) == "authenticated"
    assert mcp(endpoint, started["session_id"]) == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)
