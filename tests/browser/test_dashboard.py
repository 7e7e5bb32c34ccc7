"""The tenant dashboard in real Chromium (issue 25 point 6): the index grouped by task in the one theme, light and
dark (no coloured bars, AA contrast), and the Tokens & sessions page: an admin searches for a user's tokens, revokes
the access token after confirming, and the client's next MCP request with it is refused. The screenshots are those
of docs/dashboard.md (written there with AUTHSEC_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx2
import pytest
from oauth2_provider.models import AccessToken
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from mcp_endpoint.login import LOGIN_TOOLS
from tests.browser.conftest import wait_until_gone
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.axe import assert_accessible
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, JSON_RPC, Committed, commit_in_acme, get_tokens, mcp_list, url

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard"
GROUPS = ["Access", "Applications & tools", "Clients & sign-in", "Services & secrets", "Workloads", "Audit"]


def _shot(browser: Any, tmp_path: Path, name: str) -> None:
    directory = Path(os.environ.get("AUTHSEC_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    browser.save_screenshot(str(path))
    if os.environ.get("AUTHSEC_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def _sign_in(browser: Any, server: LiveServer, next_path: str = "/t/acme/admin/") -> None:
    browser.set_window_size(1280, 900)  # a laptop's window, as the docs' screenshots show it
    browser.get(f"{server.url}/t/acme/admin/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))


def _rgb(value: str) -> tuple[float, float, float]:
    red, green, blue = (int(part) for part in re.findall(r"\d+", value)[:3])
    return red, green, blue


def _contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two computed CSS colours."""

    def luminance(rgb: tuple[float, float, float]) -> float:
        channels = [c / 255 for c in rgb]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(_rgb(foreground)), luminance(_rgb(background))), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _style(browser: Any, selector: str, prop: str) -> str:
    script = "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1])"
    return browser.execute_script(script, selector, prop)


def _check_theme(browser: Any, body_bg: str) -> None:
    """The index in the current theme: the six task groups, no green or default blue bar, AA contrast. Colours are
    read once the theme switch has settled: Django's admin CSS fades link colours (`transition: color 0.15s`), and a
    colour read mid-fade is neither theme's."""
    settled = "return document.getAnimations().every(animation => animation.playState !== 'running')"
    WebDriverWait(browser, 5).until(lambda driver: driver.execute_script(settled))
    captions = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#content-main caption a.section")]
    assert captions == GROUPS
    assert _style(browser, "body", "background-color") == body_bg
    bars = {
        _style(browser, "#header", "background-color"),
        _style(browser, "#content-main .module caption", "background-color"),
    }
    # django-tenants' green, Django's header blue, caption blue (light), caption/breadcrumb blue (dark)
    assert not bars & {"rgb(0, 128, 0)", "rgb(65, 118, 144)", "rgb(121, 174, 200)", "rgb(38, 75, 93)"}
    pairs = [
        ("#site-name a", "#header"),
        ("#content-main .module caption a.section", "#content-main .module caption"),
        ("#content-main .module th a", "body"),
        ("#content-main .group-help td.help", "body"),
    ]
    for text, background in pairs:
        ratio = _contrast(_style(browser, text, "color"), _style(browser, background, "background-color"))
        assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f}"


def test_the_index_is_grouped_by_task_in_light_and_dark(browser, asgi_server: LiveServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _sign_in(browser, asgi_server)
    browser.execute_script("localStorage.setItem('theme', 'light')")
    browser.refresh()
    assert browser.execute_script("return document.documentElement.dataset.theme") == "light"
    _check_theme(browser, "rgb(255, 255, 255)")
    _shot(browser, tmp_path, "index-light")

    # Django's toggle cycles auto, light and dark (in an order that depends on the browser's preference).
    for _ in range(3):
        if browser.execute_script("return document.documentElement.dataset.theme") == "dark":
            break
        browser.find_element(By.CSS_SELECTOR, "button.theme-toggle").click()
    assert browser.execute_script("return document.documentElement.dataset.theme") == "dark"
    _check_theme(browser, "rgb(11, 17, 32)")
    _shot(browser, tmp_path, "index-dark")
    browser.execute_script("localStorage.removeItem('theme')")


def test_revoke_on_the_tokens_page_refuses_the_clients_next_mcp_request(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, committed: Committed, tmp_path: Path
) -> None:
    token = get_tokens(asgi_server, committed, "dave@acme.test")["access_token"]
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["dave@acme.test"] | LOGIN_TOOLS)
    checksum = hashlib.sha256(token.encode()).hexdigest()
    token_id = commit_in_acme(lambda: AccessToken.objects.get(token_checksum=checksum).pk)

    _sign_in(browser, asgi_server)
    browser.execute_script("localStorage.setItem('theme', 'light')")
    link = browser.find_element(By.LINK_TEXT, "Tokens & sessions")
    link.click()
    wait_until_gone(browser, link)
    search = browser.find_element(By.ID, "tokens-q")
    search.send_keys("dave@acme" + Keys.ENTER)  # by keyboard
    wait_until_gone(browser, search)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.token-row")
    assert rows and all("dave@acme.test" in row.text for row in rows)
    assert token not in browser.page_source
    ours = browser.find_element(By.CSS_SELECTOR, f'tr.token-row[data-kind="access"][data-id="{token_id}"]')
    assert checksum[:12] in ours.text
    _shot(browser, tmp_path, "tokens")

    revoke = ours.find_element(By.CSS_SELECTOR, "a.revoke-link")
    revoke.send_keys(Keys.ENTER)
    wait_until_gone(browser, revoke)
    assert "dave@acme.test" in browser.find_element(By.CSS_SELECTOR, "dl.token-summary").text
    # Asking changed nothing yet: the token still works.
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["dave@acme.test"] | LOGIN_TOOLS)
    confirm = browser.find_element(By.CSS_SELECTOR, "#revoke-form input[type=submit]")
    confirm.click()
    wait_until_gone(browser, confirm)
    assert browser.current_url == f"{asgi_server.url}/t/acme/admin/tokens/"
    assert f"#{token_id} (dave@acme.test) is revoked" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr.token-row[data-kind="access"][data-id="{token_id}"]')

    response = httpx2.post(
        url(asgi_server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "token revoked"


def test_the_dashboard_pages_pass_axe_in_light_and_dark(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, committed: Committed
) -> None:
    """No serious or critical WCAG 2.0/2.1 A/AA violation (axe-core) on the index, Tokens & sessions with rows, its
    confirmation page, a changelist and a change form, in both themes."""
    get_tokens(asgi_server, committed, "dave@acme.test")  # rows on Tokens & sessions
    _sign_in(browser, asgi_server)
    for theme in ("light", "dark"):
        browser.execute_script(f"localStorage.setItem('theme', '{theme}')")
        for path, name in (
            ("", "index"),
            ("tokens/?q=dave", "Tokens & sessions"),
            ("rbac/role/", "roles changelist"),
            ("rbac/role/add/", "role form"),
        ):
            browser.get(f"{asgi_server.url}/t/acme/admin/{path}")
            assert browser.execute_script("return document.documentElement.dataset.theme") == theme
            assert_accessible(browser, f"{name} ({theme})")
        browser.get(f"{asgi_server.url}/t/acme/admin/tokens/?q=dave&kind=access")
        revoke = browser.find_element(By.CSS_SELECTOR, "a.revoke-link")
        revoke.click()
        wait_until_gone(browser, revoke)
        assert browser.find_elements(By.ID, "revoke-form")
        assert_accessible(browser, f"revoke confirmation ({theme})")
    browser.execute_script("localStorage.removeItem('theme')")
