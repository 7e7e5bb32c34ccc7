"""In a real browser: a tenant admin grants bob the developer role, sees it in bob's effective permissions,
and finds the change in the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from rbac.demo import DEMO, seed_rbac
from rbac.models import Application, Group, Resource, Role, Scope
from tests.browser.conftest import wait_until_gone
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture(scope="module")
def committed_demo(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The acme demo data, committed so the server process sees it; removed again afterwards.

    Module-scoped, so it runs before (and is torn down after) the test's own rolled-back transaction."""
    emails = list(DEMO["acme"]["users"])
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        for email in emails:
            UserFactory(email=email)
        seed_rbac("acme")
    yield
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        Application.objects.filter(slug="demo").delete()
        for model in (Role, Group, Scope, Resource):
            model.objects.all().delete()
        User.objects.filter(email__in=emails).delete()


def _wait_for_page(browser, old_element) -> None:  # type: ignore[no-untyped-def]
    wait_until_gone(browser, old_element)


def _log_in(browser, url: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{url}/t/acme/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.click()
    _wait_for_page(browser, submit)


def _grant_rows(browser) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = browser.find_elements(By.CSS_SELECTOR, "#grants tbody tr[data-kind]")
    return {(row.get_attribute("data-kind"), row.get_attribute("data-name")) for row in rows}


def _decision(browser, tool: str) -> str:  # type: ignore[no-untyped-def]
    return browser.find_element(By.CSS_SELECTOR, f"tr[data-tool='{tool}'] td:nth-child(2)").text


def test_admin_grants_bob_developer_and_sees_it_everywhere(browser, asgi_server: LiveServer, committed_demo) -> None:  # type: ignore[no-untyped-def]
    with schema_context("tenant_acme"):
        bob = User.objects.get(email="bob@acme.test")
    _log_in(browser, asgi_server.url)

    # Before: bob is an analyst only; create_resource (needs scope write) is denied.
    browser.get(f"{asgi_server.url}/t/acme/admin/accounts/user/{bob.pk}/effective/")
    assert ("role", "developer") not in _grant_rows(browser)
    assert _decision(browser, "create_resource") == "Denied"

    # Grant the role on bob's page: add a new row to the "roles" inline, pick developer in its autocomplete.
    browser.get(f"{asgi_server.url}/t/acme/admin/accounts/user/{bob.pk}/change/")
    browser.find_element(By.CSS_SELECTOR, "#role_bindings-group .add-row a").click()
    new_row = int(browser.find_element(By.ID, "id_role_bindings-TOTAL_FORMS").get_attribute("value")) - 1
    select = WebDriverWait(browser, 10).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, f"#role_bindings-{new_row} .select2-selection"))
    )
    select.click()
    search = WebDriverWait(browser, 10).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".select2-search__field"))
    )
    search.send_keys("developer")
    WebDriverWait(browser, 10).until(
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".select2-results__option"), "developer")
    )
    search.send_keys(Keys.ENTER)
    save = browser.find_element(By.NAME, "_continue")
    save.click()
    _wait_for_page(browser, save)
    assert "was changed successfully" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text

    # After: the effective-permissions page shows the role, its grants and the new decisions.
    browser.find_element(By.CSS_SELECTOR, "a.effectivelink").click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "grants")))
    rows = _grant_rows(browser)
    assert {("role", "developer"), ("role", "analyst"), ("scope", "write"), ("resource", "projects")} <= rows
    source = browser.find_element(By.CSS_SELECTOR, "#grants tr[data-kind='scope'][data-name='write'] td:nth-child(3)")
    assert source.text == "role developer"
    assert _decision(browser, "create_resource") == "Allowed"

    # The audit log lists the grant, made by admin@acme.test.
    browser.get(f"{asgi_server.url}/t/acme/admin/audit/auditevent/?q=role_granted")
    listing = browser.find_element(By.ID, "result_list").text
    assert "rbac.role_granted" in listing
    assert "admin@acme.test" in listing
    assert "developer → bob@acme.test" in listing
