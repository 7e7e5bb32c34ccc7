"""The tenant dashboard's home in real Chromium, by keyboard: acme's admin signs in, reads each card's numbers, and
follows every number's link; the list it lands on shows exactly the counted rows. axe-core finds no serious or
critical violation in the light or the dark theme. The screenshot is the one of docs/dashboard.md (written there
with AUTHSEC_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import audit
from oauth.models import Client
from rbac.models import Application, ToolPin, ToolPolicy
from services.models import Service
from tests.browser.conftest import wait_until_gone
from tests.factories import OAuthClientFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.axe import assert_accessible, tab_through
from tests.support.live import LiveServer
from tests.support.mcp import commit_in_acme

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard"
MARK = "home-browser"


@pytest.fixture(scope="module")
def home_data(committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Committed in acme: two pending client registrations, a service whose rotation failed, an SVID expiring in
    three hours and one expired, a changed tool held for review, tool calls denied, and a verification of the chain."""
    from workloads.models import Workload

    def setup() -> None:
        for i in range(2):
            OAuthClientFactory(name=f"{MARK} pending {i}", status=Client.Status.PENDING)
        Service.objects.create(
            name=f"{MARK}-crm",
            base_url="https://crm.example.test",
            vault_path=f"{MARK}-crm",
            status=Service.Status.ROTATION_FAILED,
            last_rotation_error="The provider refused the refresh token (401).",
            rotation_failures=2,
        )
        now = timezone.now()
        for name, expires in (("billing-api", dt.timedelta(hours=3)), ("old-batch", -dt.timedelta(hours=2))):
            Workload.objects.create(
                name=f"{MARK}-{name}",
                spiffe_path=f"/{MARK}/{name}",
                svid_serial=name,
                svid_not_before=now - dt.timedelta(hours=20),
                svid_not_after=now + expires,
            )
        demo = Application.objects.get(slug="demo")
        policy = ToolPolicy.objects.create(application=demo, tool_name=f"{MARK}_export", roles=["admin"])
        ToolPin.objects.create(
            policy=policy, tool_name=policy.tool_name, source=ToolPin.Source.HOSTED, pinned_hash="a" * 64,
            seen_hash="b" * 64,
        )  # fmt: skip
        for tool, times in (("admin_panel", 4), ("deploy_production", 2), ("view_analytics", 1)):
            for _ in range(times):
                audit.record(
                    "tests", "mcp.tool_call", outcome="deny", data={"application": "demo", "tool": tool, "reason": "x"}
                )

        call_command("verify_audit", "acme", stdout=io.StringIO(), stderr=io.StringIO())  # recorded, committed

    def teardown() -> None:
        Client.objects.filter(name__startswith=MARK).delete()
        Service.objects.filter(name__startswith=MARK).delete()
        Workload.objects.filter(name__startswith=MARK).delete()
        ToolPolicy.objects.filter(tool_name__startswith=MARK).delete()

    with django_db_blocker.unblock():
        commit_in_acme(setup)
        yield
        commit_in_acme(teardown)


def _log_in(browser: Any, url: str) -> None:
    browser.get(f"{url}/t/acme/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.send_keys(Keys.ENTER)
    wait_until_gone(browser, submit)


def _numbers(browser: Any) -> dict[str, int]:
    return {
        link.get_attribute("data-count"): int(link.find_element(By.CSS_SELECTOR, ".num").text)
        for link in browser.find_elements(By.CSS_SELECTOR, "#tenant-home a.num-link")
    }


def _rows(browser: Any) -> int:
    """The rows the list page shows: an admin changelist's, the audit log's or the approval queue's."""
    if browser.find_elements(By.ID, "audit-events"):  # 50 a page: read on to the oldest
        rows = len(browser.find_elements(By.CSS_SELECTOR, "#audit-events tr[data-event-id]"))
        while older := browser.find_elements(By.ID, "page-older"):
            browser.get(older[0].get_attribute("href"))
            rows += len(browser.find_elements(By.CSS_SELECTOR, "#audit-events tr[data-event-id]"))
        return rows
    if browser.find_elements(By.CSS_SELECTOR, "#pending, #no-pending"):
        return len(browser.find_elements(By.CSS_SELECTOR, "li.pending-approval"))
    return len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"))


def _shot(browser: Any, tmp_path: Path, name: str = "home", docs: bool = True) -> None:
    directory = Path(os.environ.get("AUTHSEC_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    browser.save_screenshot(str(path))
    if docs and os.environ.get("AUTHSEC_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def test_every_number_lands_on_exactly_its_rows(browser, asgi_server: LiveServer, home_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _log_in(browser, asgi_server.url)
    home = f"{asgi_server.url}/t/acme/admin/"
    browser.get(home)
    found = _numbers(browser)
    assert found["pending_clients"] >= 2 and found["rotation_failed"] >= 1 and found["drifted_tools"] >= 1
    assert found["svids_expiring"] >= 1 and found["svids_expired"] >= 1 and found["denials"] >= 7
    assert found["denied:demo/admin_panel"] >= 4
    assert found["users"] >= 1 and found["applications"] >= 1 and found["tools"] >= 1
    services = {
        item.get_attribute("data-service"): item.get_attribute("data-ok")
        for item in browser.find_elements(By.CSS_SELECTOR, "#home-health li")
    }
    assert services == {"postgres": "true", "redis": "true", "vault": "true"}
    spark = browser.find_element(By.ID, "denials-sparkline")
    assert "Denials per hour" in spark.get_attribute("aria-label")
    assert (
        sum(int(bar.get_attribute("data-count")) for bar in spark.find_elements(By.TAG_NAME, "rect"))
        == found["denials"]
    )
    endpoint = browser.find_element(By.CSS_SELECTOR, '#home-applications tr[data-application="demo"] code').text
    assert endpoint == f"{asgi_server.url}/t/acme/mcp/demo"
    assert browser.find_element(By.ID, "verification-state").text.startswith("✓ Held at the last verification")
    browser.set_window_size(1280, 1400)
    assert_accessible(browser, "tenant home")  # no serious or critical WCAG A/AA violation, light theme
    tab_through(browser, browser.find_element(By.ID, "tenant-home"))  # every card link reachable by Tab
    _shot(browser, tmp_path)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    try:
        _shot(browser, tmp_path, "home-dark", docs=False)  # the dark theme, as an artifact only
        assert_accessible(browser, "tenant home, dark theme")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    for key, value in found.items():
        browser.get(home)
        link = browser.find_element(By.CSS_SELECTOR, f'#tenant-home a.num-link[data-count="{key}"]')
        browser.execute_script("arguments[0].focus()", link)  # as Tab would reach it
        assert browser.switch_to.active_element == link
        link.send_keys(Keys.ENTER)
        wait_until_gone(browser, link)
        assert _rows(browser) == value, (key, browser.current_url)

    browser.get(home)
    link = browser.find_element(By.ID, "verification-link")
    link.send_keys(Keys.ENTER)
    wait_until_gone(browser, link)
    assert "audit.chain_verified" in browser.find_element(By.ID, "content").text
