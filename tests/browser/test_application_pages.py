"""In a real browser, by keyboard: an application's "Connect a client" page and its Test button against the live
endpoint (green) and a disabled application (red, with the reason); the user × tool matrix checked cell by cell
against the decision engine over the demo data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from rbac.demo import seed_standard_oauth_application
from rbac.engine import decide
from rbac.grants import effective_grants
from rbac.models import Application
from tests.browser.conftest import wait_until_gone
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.axe import assert_accessible, tab_through, tab_to
from tests.support.live import LiveServer
from tests.support.screenshots import save_docs_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

DISABLED = "demo-off"


@pytest.fixture(scope="module")
def applications(committed, django_db_blocker) -> Iterator[dict[str, int]]:  # type: ignore[no-untyped-def]
    """Besides the committed `demo` (mode both): `demo-oauth` (bearer) and a disabled application, committed."""
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        bearer = seed_standard_oauth_application("acme", actor="tests")
        assert bearer is not None
        off = Application.objects.create(slug=DISABLED, name="Switched off", is_active=False)
        ids = {"demo": Application.objects.get(slug="demo").pk, "demo-oauth": bearer.pk, DISABLED: off.pk}
    yield ids
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        Application.objects.filter(slug__in=["demo-oauth", DISABLED]).delete()


def _log_in(browser, url: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{url}/t/acme/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.send_keys(Keys.ENTER)
    wait_until_gone(browser, submit)


def _press(browser, element) -> None:  # type: ignore[no-untyped-def]
    """Focus `element` as Tab would and press Enter (keyboard use, no mouse). On the pages these tests are about,
    `tab_to` presses Tab itself; the change page's links are reached this quicker way (the sidebar is long)."""
    browser.execute_script("arguments[0].focus()", element)
    assert browser.switch_to.active_element == element
    element.send_keys(Keys.ENTER)


def _run_check(browser, url: str, app_id: int, check_page: bool = False) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """Open the application's connect page from its change page and press Test, by keyboard; with `check_page` the
    connect page is first checked for accessibility and walked with Tab."""
    browser.get(f"{url}/t/acme/admin/rbac/application/{app_id}/change/")
    link = browser.find_element(By.ID, "connect-link")
    _press(browser, link)
    wait_until_gone(browser, link)
    if check_page:
        assert_accessible(browser, "connect page")
        tab_through(browser)
    button = browser.find_element(By.ID, "run-check")
    if check_page:
        tab_to(browser, button).send_keys(Keys.ENTER)
    else:
        _press(browser, button)
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "check-steps")))
    return [
        (
            step.get_attribute("data-ok"),
            step.find_element(By.TAG_NAME, "strong").text,
            step.find_element(By.CSS_SELECTOR, ".detail").text,
        )
        for step in browser.find_elements(By.CSS_SELECTOR, "#check-steps li")
    ]


def test_test_button_is_green_against_the_live_endpoint(browser, asgi_server: LiveServer, applications) -> None:  # type: ignore[no-untyped-def]
    _log_in(browser, asgi_server.url)
    for slug in ("demo", "demo-oauth"):
        steps = _run_check(browser, asgi_server.url, applications[slug], check_page=slug == "demo")
        if slug == "demo":
            assert_accessible(browser, "connect page with a green check")
            save_docs_screenshot(browser, "application-connect")
        endpoint = f"{asgi_server.url}/t/acme/mcp/{slug}"
        assert browser.find_element(By.ID, "endpoint-url").text == endpoint
        assert (
            f"claude mcp add --transport http authsec-{slug} {endpoint}"
            in browser.find_element(By.ID, "code-claude-code").text
        )
        assert endpoint in browser.find_element(By.ID, "code-vscode").text
        assert [ok for ok, _, _ in steps] == ["true"] * 4, steps
        assert browser.find_element(By.ID, "check-result").get_attribute("data-ok") == "true"
        challenge = steps[1][2]
        assert (
            f"resource_metadata={asgi_server.url}/.well-known/oauth-protected-resource/t/acme/mcp/{slug}" in challenge
        )
        assert f"authorization server {asgi_server.url}/t/acme/oauth" in steps[2][2]
    assert "401, as bearer mode requires" in steps[0][2]  # demo-oauth is bearer-only


def test_test_button_is_red_with_the_reason_for_a_disabled_application(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, applications
) -> None:
    _log_in(browser, asgi_server.url)
    steps = _run_check(browser, asgi_server.url, applications[DISABLED])
    assert browser.find_element(By.ID, "inactive-note").is_displayed()
    assert browser.find_element(By.ID, "check-result").get_attribute("data-ok") == "false"
    assert steps[0][0] == "false" and "The application is disabled" in steps[0][2]
    assert all(ok == "false" for ok, _, _ in steps)
    red = browser.find_element(By.CSS_SELECTOR, "#check-steps li.fail")
    assert red.value_of_css_property("color") == "rgba(180, 35, 24, 1)"
    assert_accessible(browser, "connect page with a red check")


def test_matrix_matches_the_engine_cell_by_cell(browser, asgi_server: LiveServer, applications) -> None:  # type: ignore[no-untyped-def]
    _log_in(browser, asgi_server.url)
    browser.get(f"{asgi_server.url}/t/acme/admin/rbac/application/{applications['demo']}/change/")
    link = browser.find_element(By.ID, "matrix-link")
    _press(browser, link)
    wait_until_gone(browser, link)
    tools = [th.get_attribute("data-tool") for th in browser.find_elements(By.CSS_SELECTOR, "#tool-matrix th.tool")]
    rows = browser.execute_script(
        """return Array.from(document.querySelectorAll('#tool-matrix tbody tr')).map(tr => [tr.dataset.user,
             Array.from(tr.querySelectorAll('td.cell')).map(td => [td.dataset.allowed, td.title])]);"""
    )
    with schema_context("tenant_acme"):
        policies = {policy.tool_name: policy for policy in Application.objects.get(slug="demo").tool_policies.all()}
        assert sorted(tools) == sorted(policies) and tools
        emails = [email for email, _ in rows]
        assert {"alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test"} <= set(emails)
        checked = 0
        for email, cells in rows:
            grants = effective_grants(User.objects.get(email=email))
            for tool, (allowed, reason) in zip(tools, cells, strict=True):
                decision = decide(grants, policies[tool].requirement())
                assert (allowed, reason) == (str(decision.allowed).lower(), decision.reason), (email, tool)
                checked += 1
    assert checked == len(rows) * len(tools)
    assert_accessible(browser, "matrix page")
    tab_through(browser)
    save_docs_screenshot(browser, "application-matrix")

    # Filter by keyboard: bob only, one tool; the CSV link carries the filter.
    search = tab_to(browser, browser.find_element(By.ID, "matrix-q"))
    search.send_keys("bob", Keys.ENTER)
    wait_until_gone(browser, search)
    assert [
        tr.get_attribute("data-user") for tr in browser.find_elements(By.CSS_SELECTOR, "#tool-matrix tbody tr")
    ] == ["bob@acme.test"]
    assert "q=bob" in browser.find_element(By.ID, "matrix-csv").get_attribute("href")
