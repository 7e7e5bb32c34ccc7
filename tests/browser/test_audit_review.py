"""In a real browser: an auditor filters the audit log by a user and "denied", sees the expected rows and the
chart, exports the CSV through the page's link, and cannot open RBAC edit pages. A screenshot is kept."""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

import audit
from accounts.models import User
from accounts.roles import DashboardRole
from audit.recorder import Actor
from tests.browser.conftest import wait_until_gone
from tests.support.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

AUDITOR, PASSWORD = "auditor.browser@acme.test", "auditor-pass-word-1"


@pytest.fixture(scope="module")
def committed_log(django_db_setup, django_db_blocker) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """An auditor and tool-call decisions, committed so the server process sees them (events stay: append-only)."""
    person = f"mallory.{uuid.uuid4().hex[:8]}@acme.test"
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        User.objects.create_user(AUDITOR, PASSWORD, is_staff=True, dashboard_roles=[DashboardRole.AUDITOR])
        who = Actor("user", "", person)
        for tool, outcome, reason in (
            ("deploy_production", "deny", "needs role deployer"),
            ("hello", "allow", "open tool"),
            ("sensitive_operations", "deny", "needs resource sensitive-data"),
            ("deploy_production", "deny", "needs role deployer"),
        ):
            data = {"application": "demo", "tool": tool, "reason": reason}
            audit.record(who, "mcp.tool_call", outcome=outcome, data=data)
        audit.record(Actor("user", "", "someone.else@acme.test"), "mcp.tool_call", outcome="deny", data=data)
    yield {"person": person}
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        User.objects.filter(email=AUDITOR).delete()


def _wait_for_page(browser, old_element) -> None:  # type: ignore[no-untyped-def]
    wait_until_gone(browser, old_element)


def _artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("AUTHSEC_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_auditor_filters_by_user_and_denied_exports_csv_and_sees_the_chart(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, committed_log: dict[str, str], tmp_path: Path
) -> None:
    person = committed_log["person"]
    browser.set_window_size(1400, 1200)
    browser.get(f"{asgi_server.url}/t/acme/audit/")
    # Not logged in: the dashboard login, which then brings the auditor back to the audit log.
    assert "/t/acme/admin/login/" in browser.current_url
    browser.find_element(By.NAME, "username").send_keys(AUDITOR)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.click()
    _wait_for_page(browser, submit)
    assert browser.current_url == f"{asgi_server.url}/t/acme/audit/"

    browser.find_element(By.ID, "id_actor").send_keys(person)
    Select(browser.find_element(By.ID, "id_outcome")).select_by_visible_text("Denied")
    button = browser.find_element(By.ID, "audit-filter-submit")
    button.click()
    _wait_for_page(browser, button)

    rows = browser.find_elements(By.CSS_SELECTOR, "#audit-events tbody tr[data-event-id]")
    seen = [(row.get_attribute("data-actor"), row.get_attribute("data-outcome"), row.text) for row in rows]
    assert len(seen) == 3, seen
    assert all(actor == person and outcome == "deny" for actor, outcome, _ in seen)
    assert ["sensitive_operations" in text for _, _, text in seen] == [False, True, False]  # newest first

    chart = browser.find_element(By.ID, "audit-chart-svg")
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert bars and {bar.get_attribute("data-outcome") for bar in bars} == {"deny"}
    assert sum(int(bar.get_attribute("data-count")) for bar in bars) == 3
    assert chart.size["width"] > 300 and chart.size["height"] > 50  # it is drawn, not just present
    top = browser.find_element(By.ID, "top-denied").text
    assert "deploy_production" in top and "sensitive_operations" in top

    screenshot = _artifacts(tmp_path) / "audit-review.png"
    browser.save_screenshot(str(screenshot))
    print(f"audit review screenshot: {screenshot}")

    # The export link of the page, fetched with the browser's session.
    href = browser.find_element(By.ID, "export-csv").get_attribute("href")
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    response = httpx2.get(href, cookies=cookies, timeout=30)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["actor_label"], r["outcome"], r["tool"]) for r in records] == [
        (person, "deny", "deploy_production"),
        (person, "deny", "sensitive_operations"),
        (person, "deny", "deploy_production"),
    ]
    assert records[0]["data"] == '{"application": "demo", "reason": "needs role deployer", "tool": "deploy_production"}'
    assert all(len(r["hash"]) == 64 for r in records)

    # An auditor reads the log but cannot change RBAC.
    browser.get(f"{asgi_server.url}/t/acme/admin/rbac/role/add/")
    assert "403" in browser.title or "Forbidden" in browser.page_source
    assert httpx2.get(f"{asgi_server.url}/t/acme/admin/rbac/role/add/", cookies=cookies).status_code == 403
