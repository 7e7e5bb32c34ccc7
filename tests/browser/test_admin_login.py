"""A tenant admin logs in to their own dashboard in a real browser, and not to another tenant's."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import wait_until_gone
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def _log_in(browser, url: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(url)
    browser.find_element(By.NAME, "username").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(password)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.click()
    # Wait for the next page: the clicked button belongs to the old document.
    wait_until_gone(browser, submit)


def test_acme_admin_logs_in_at_acme_but_not_at_globex(browser, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    _log_in(browser, f"{asgi_server.url}/t/acme/admin/login/", "admin@acme.test", ADMIN_PASSWORD)
    assert browser.current_url == f"{asgi_server.url}/t/acme/admin/"
    assert "Acme Corp" in browser.find_element(By.ID, "site-name").text
    assert "admin@acme.test" in browser.find_element(By.ID, "user-tools").text.lower()
    # The admin stylesheet is served (the page is not unstyled).
    assert browser.execute_script("return getComputedStyle(document.getElementById('header')).display") == "flex"

    # The acme session cookie is not sent to globex, and acme's credentials do not work there.
    browser.get(f"{asgi_server.url}/t/globex/admin/")
    assert browser.current_url.startswith(f"{asgi_server.url}/t/globex/admin/login/")
    _log_in(browser, f"{asgi_server.url}/t/globex/admin/login/", "admin@acme.test", ADMIN_PASSWORD)
    assert browser.current_url.startswith(f"{asgi_server.url}/t/globex/admin/login/")
    assert "Please enter the correct email" in browser.find_element(By.CSS_SELECTOR, ".errornote").text

    # Still logged in to acme in the same browser.
    browser.get(f"{asgi_server.url}/t/acme/admin/")
    assert browser.current_url == f"{asgi_server.url}/t/acme/admin/"


def test_unknown_tenant_shows_the_404_page(browser, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{asgi_server.url}/t/nosuchtenant/admin/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Page not found"
