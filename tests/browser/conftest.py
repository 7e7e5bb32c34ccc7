"""Headless Chromium (Debian's chromium + chromedriver, installed by `make test`) driven by selenium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def _chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[webdriver.Chrome, dict[str, int]]]:
    """One headless Chromium per test module (starting one costs seconds); `browser` resets it per test."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"Chromium or chromedriver missing ({CHROMIUM}, {CHROMEDRIVER}); `make test` installs them")
    home = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={home / 'profile'}",
    ):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver, driver.get_window_size()
    finally:
        driver.quit()


@pytest.fixture
def browser(_chromium: tuple[webdriver.Chrome, dict[str, int]]) -> Iterator[webdriver.Chrome]:
    """The module's Chromium with no state from an earlier test: one window on about:blank at the start-up
    size, and no cookies (of any origin) or cache, so each test signs in from scratch."""
    driver, size = _chromium
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.set_window_size(size["width"], size["height"])
    yield driver


def wait_until_gone(browser: webdriver.Chrome, element: object, timeout: float = 20) -> None:
    """Wait until `element` no longer belongs to the page (the click navigated away).

    Like `expected_conditions.staleness_of`, but chromedriver may also answer a lookup on an element of a
    document being replaced with "Node with given id does not belong to the document" (a WebDriverException
    that is not a StaleElementReferenceException): that is the same fact, the old page is gone."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def gone(_: object) -> bool:
        try:
            element.is_enabled()  # type: ignore[attr-defined]
        except WebDriverException:
            return True
        return False

    WebDriverWait(browser, timeout).until(gone)
