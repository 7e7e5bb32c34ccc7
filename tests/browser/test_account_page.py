"""In a real browser: a user opens their account page, sees their tools, and revokes the client holding their
token with the keyboard; the client's next MCP request is refused (issue 25, self-service revoke)."""

from __future__ import annotations

import httpx2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from mcp_endpoint.login import LOGIN_TOOLS
from tests.browser.conftest import wait_until_gone
from tests.support.axe import assert_accessible, tab_through, tab_to
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, JSON_RPC, Committed, get_tokens, mcp_list, url
from tests.support.oauth import PASSWORD
from tests.support.screenshots import save_docs_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_revoke_on_the_account_page_refuses_the_clients_next_mcp_request(  # type: ignore[no-untyped-def]
    browser,
    asgi_server: LiveServer,
    committed: Committed,
) -> None:
    token = get_tokens(asgi_server, committed, "dave@acme.test")["access_token"]
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["dave@acme.test"] | LOGIN_TOOLS)

    browser.get(f"{asgi_server.url}/t/acme/accounts/login/?next=/t/acme/account/")
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "sign-in")))
    assert_accessible(browser, "login page")
    tab_through(browser)
    save_docs_screenshot(browser, "login")
    tab_to(browser, browser.find_element(By.NAME, "username")).send_keys("dave@acme.test")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD + Keys.ENTER)
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "account-email")))
    assert browser.find_element(By.ID, "account-email").text == "dave@acme.test"
    allowed = {
        row.get_attribute("data-tool")
        for row in browser.find_elements(By.CSS_SELECTOR, '[data-application="demo"] tr.allowed')
    }
    assert allowed == EXPECTED["dave@acme.test"]
    assert_accessible(browser, "account page")
    tab_through(browser)
    save_docs_screenshot(browser, "account")

    revoke = tab_to(browser, browser.find_element(By.CSS_SELECTOR, "li.consent button"))
    revoke.send_keys(Keys.ENTER)  # by keyboard
    wait_until_gone(browser, revoke)
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "account-message")))
    assert not browser.find_elements(By.CSS_SELECTOR, "li.consent")
    assert_accessible(browser, "account page after a revoke")

    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "token revoked"
