"""Human approval end to end: carol's MCP client (2026-07-28, the real `mcp` client) calls `deploy_production`, which
asks for approval by a holder of the role `admin`; the client's URL-mode elicitation opens the approval page in real
Chromium, where alice signs in, answers, proves her second factor (TOTP) and approves; the retried call returns the
tool's result. The screenshots are those of docs/approvals.md (written there with AUTHSEC_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from mcp_endpoint.bearer import bump_config_version
from rbac.models import ToolPolicy
from tests.browser.conftest import wait_until_gone
from tests.support.axe import assert_accessible, tab_through, tab_to
from tests.support.live import LiveServer
from tests.support.mcp import Committed, commit_in_acme, url
from tests.support.mfa import code
from tests.support.oauth import PASSWORD
from tests.support.screenshots import save_docs_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

KEY = "3132333435363738393031323334353637383930"  # RFC 6238's test key, as alice's authenticator app


@pytest.fixture(scope="module")
def gated(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """deploy_production waits for one `admin` (as seed_demo sets it); alice has an authenticator app."""

    def setup() -> None:
        ToolPolicy.objects.filter(application__slug="demo", tool_name="deploy_production").update(
            approval="others", approval_role="admin", log_arguments=True
        )
        bump_config_version()  # `update` sends no signal: tell the server's processes
        alice = User.objects.get(email="alice@acme.test")
        TOTPDevice.objects.create(user=alice, name="Authenticator", key=KEY, confirmed=True)

    def teardown() -> None:
        ToolPolicy.objects.filter(application__slug="demo", tool_name="deploy_production").update(
            approval="none", approval_role="", log_arguments=False
        )
        bump_config_version()
        TOTPDevice.objects.filter(user__email="alice@acme.test").delete()

    with django_db_blocker.unblock():
        commit_in_acme(setup)
        yield
        commit_in_acme(teardown)


def _click(browser: Any, by: str, value: str) -> None:
    element = browser.find_element(by, value)
    element.click()
    wait_until_gone(browser, element)


def test_an_approver_approves_in_the_browser_and_the_call_runs(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, tokens, gated
) -> None:
    token = tokens("carol@acme.test")
    opened: list[str] = []

    def approve_in_browser(approval_url: str) -> None:
        browser.set_window_size(1000, 900)
        browser.get(approval_url)  # not signed in: the login page, which comes back here
        assert "/accounts/login/" in browser.current_url
        browser.find_element(By.NAME, "username").send_keys("alice@acme.test")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        _click(browser, By.CSS_SELECTOR, "input[type=submit], button[type=submit]")
        assert browser.current_url == approval_url
        page = browser.find_element(By.TAG_NAME, "body").text
        for shown in ("deploy_production", "demo", "carol@acme.test", "1.2.3", "pending"):
            assert shown in page, shown
        assert_accessible(browser, "approval page")
        tab_through(browser)
        save_docs_screenshot(browser, "approval-request", "approvals")
        _click(browser, By.CSS_SELECTOR, "button.approve")  # no fresh factor yet: asks for one
        assert "/account/verify/" in browser.current_url
        assert_accessible(browser, "second-factor verify page (authenticator app)")
        tab_through(browser)
        tab_to(browser, browser.find_element(By.ID, "code")).send_keys(code(KEY))
        save_docs_screenshot(browser, "approval-step-up", "approvals")
        _click(browser, By.ID, "verify-totp")
        assert browser.current_url == approval_url
        approve = tab_to(browser, browser.find_element(By.CSS_SELECTOR, "button.approve"))
        approve.send_keys(Keys.ENTER)  # the page's main action, by keyboard
        wait_until_gone(browser, approve)
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "status").text == "approved")
        assert "alice@acme.test approved" in browser.find_element(By.ID, "decisions").text
        assert_accessible(browser, "approval page, approved")
        save_docs_screenshot(browser, "approval-approved", "approvals")

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        opened.append(params.url)
        await anyio.to_thread.run_sync(approve_in_browser, params.url)
        return types.ElicitResult(action="accept")

    async def main() -> types.CallToolResult:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        client = Client(
            streamable_http_client(url(asgi_server), http_client=http), cache=None, elicitation_callback=elicit
        )
        async with http, client:
            assert client.protocol_version == "2026-07-28"
            return await client.call_tool("deploy_production", {"version": "1.2.3"})

    result = anyio.run(main)
    assert result.is_error is False and result.content[0].text == "Deployment initiated"
    [approval_url] = opened
    approval_id = approval_url.rstrip("/").rsplit("/", 1)[1]

    def check() -> None:
        assert ApprovalRequest.objects.get(pk=approval_id).status == "used"
        actions = list(
            AuditEvent.objects.filter(data__approval_id=approval_id)
            .exclude(action="mcp.tool_call")
            .order_by("seq")
            .values_list("action", "actor_label")
        )
        assert ("approval.requested", "carol@acme.test") in actions
        assert ("approval.approved", "alice@acme.test") in actions
        assert ("approval.used", "carol@acme.test") in actions

    commit_in_acme(check)


def test_the_queue_lists_what_waits_for_the_approver(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, tokens, gated
) -> None:
    token = tokens("carol@acme.test")

    async def ask() -> types.CallToolResult:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        async with (
            http,
            Client(streamable_http_client(url(asgi_server), http_client=http), mode="legacy", cache=None) as c,
        ):
            return await c.call_tool("deploy_production", {"version": "2.0.0", "api_token": "s3cr3t"})

    first = anyio.run(ask)
    assert first.is_error and "/t/acme/approvals/" in first.content[0].text
    browser.set_window_size(1000, 900)
    browser.get(f"{asgi_server.url}/t/acme/accounts/login/?next=/t/acme/")
    browser.find_element(By.NAME, "username").send_keys("alice@acme.test")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    _click(browser, By.CSS_SELECTOR, "input[type=submit], button[type=submit]")
    count = browser.find_element(By.ID, "pending-approvals")
    assert "approval request" in count.text
    _click(browser, By.CSS_SELECTOR, "#pending-approvals a")
    queue = browser.find_element(By.ID, "pending").text
    assert "deploy_production" in queue and "carol@acme.test" in queue and "2.0.0" in queue
    assert "s3cr3t" not in browser.page_source  # redacted as the audit log redacts it
    assert_accessible(browser, "approval queue")
    tab_through(browser)
    save_docs_screenshot(browser, "approval-queue", "approvals")
