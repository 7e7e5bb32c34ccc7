"""In a real browser: a tenant admin finds a hosted tool held because its definition changed, reads the pinned and
the changed definition side by side, approves the new one, and the MCP endpoint serves the tool again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By

from mcp_endpoint.registry import registry
from rbac import pins
from rbac import services as rbac
from rbac.models import Application, ToolPin, ToolPolicy
from tests.browser.conftest import wait_until_gone
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer
from tests.support.mcp import Committed, get_token, mcp_list, url

pytestmark = [pytest.mark.browser, pytest.mark.django_db]
APP = "pinned-browser"
APPROVED_BEFORE = "Greets you."  # the description an admin approved before the server's code was upgraded


@pytest.fixture(scope="module")
def upgraded(committed: Committed, django_db_blocker) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An application whose `hello` was pinned with an older description than the server's code has now."""
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        application = Application.objects.create(slug=APP, name="Pinned (browser)", auth_mode="bearer")
        policy = rbac.upsert_tool_policy(actor="tests", application=application, tool_name="hello")
        older = {**registry.get("hello").definition, "description": APPROVED_BEFORE}
        pins.observe_tool(actor="tests", observed=pins.seen(older), source=ToolPin.Source.HOSTED, policy=policy)
    yield APP
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        Application.objects.filter(slug=APP).delete()


def test_admin_approves_a_held_tool_in_the_dashboard_and_it_is_served_again(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, committed: Committed, upgraded: str
) -> None:
    token = get_token(asgi_server, committed, "alice@acme.test", app=upgraded)
    endpoint = url(asgi_server, app=upgraded)
    assert mcp_list(endpoint, token) == []  # the server loaded its new code: hello differs from its pin, held
    with schema_context("tenant_acme"):
        pin = ToolPin.objects.get(policy__application__slug=upgraded)
        assert pin.state == ToolPin.State.DRIFTED

    browser.get(f"{asgi_server.url}/t/acme/admin/login/?next=/t/acme/admin/rbac/toolpin/")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.click()
    wait_until_gone(browser, submit)

    # The list, filtered to what waits for review, leads to the tool's review page.
    browser.get(f"{asgi_server.url}/t/acme/admin/rbac/toolpin/?state=drifted&q={upgraded}")
    assert "Changed, waits for review" in browser.find_element(By.ID, "result_list").text
    link = browser.find_element(By.LINK_TEXT, "hello")
    link.click()
    wait_until_gone(browser, link)
    assert browser.find_element(By.ID, "pin-state").get_attribute("data-state") == "drifted"
    assert browser.find_element(By.ID, "pin-held").text == "held, not served"
    changed = browser.find_elements(By.CSS_SELECTOR, "#pin-diff tr.replace")
    assert any(
        APPROVED_BEFORE in row.find_element(By.CSS_SELECTOR, "td.left").text
        and "Greets the signed-in user." in row.find_element(By.CSS_SELECTOR, "td.right").text
        for row in changed
    )
    assert browser.find_element(By.ID, "no-warnings").is_displayed()

    approve = browser.find_element(By.ID, "approve-pin")
    approve.click()
    wait_until_gone(browser, approve)
    assert "it is served again" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert browser.find_element(By.ID, "pin-state").get_attribute("data-state") == "pinned"
    assert browser.find_elements(By.ID, "approve-pin") == []

    assert mcp_list(endpoint, token) == ["hello"]
    with schema_context("tenant_acme"):
        pin.refresh_from_db()
        assert pin.pinned_hash == registry.get("hello").definition_hash
        assert ToolPolicy.objects.filter(application__slug=upgraded).count() == 1
