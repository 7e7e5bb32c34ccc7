"""In a real browser: the tenant admin makes bob lose `developer` on his page, previews the change (exactly the
tools he loses), confirms it, and the saved audit event holds that diff. The screenshot is the one of
docs/dashboard.md, "Change preview" (written there with AUTHSEC_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from audit.models import AuditEvent
from rbac import services
from rbac.demo import DEMO, seed_rbac
from rbac.models import Application, Group, Resource, Role, RoleBinding, Scope
from tests.browser.conftest import wait_until_gone
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard"


@pytest.fixture(scope="module")
def bob_developer(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The acme demo data with bob an analyst and a developer, committed so the server sees it; removed after."""
    emails = list(DEMO["acme"]["users"])
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        for email in emails:
            UserFactory(email=email)
        seed_rbac("acme")
        bob = User.objects.get(email="bob@acme.test")
        services.grant_role(actor="tests", role=Role.objects.get(name="developer"), user=bob)
    yield
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        Application.objects.filter(slug="demo").delete()
        for model in (Role, Group, Scope, Resource):
            model.objects.all().delete()
        User.objects.filter(email__in=emails).delete()


def _shot(browser: Any, tmp_path: Path, name: str) -> None:
    directory = Path(os.environ.get("AUTHSEC_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    browser.save_screenshot(str(path))
    if os.environ.get("AUTHSEC_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / path.name)


def _click(browser: Any, by: str, value: str) -> None:
    element = browser.find_element(by, value)
    element.click()
    wait_until_gone(browser, element)


def _diff(browser: Any) -> dict[str, dict[str, set[str]]]:
    """The preview's table: user → {"gains": tools, "loses": tools}, tools as <application>/<tool>."""
    found: dict[str, dict[str, set[str]]] = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#access-diff tbody tr"):
        found[row.get_attribute("data-user")] = {
            kind: {li.get_attribute("data-tool") for li in row.find_elements(By.CSS_SELECTOR, f"li.access-{cls}")}
            for kind, cls in (("gains", "gain"), ("loses", "loss"))
        }
    return found


def test_admin_previews_bob_losing_developer_then_saves_it(  # type: ignore[no-untyped-def]
    browser, asgi_server: LiveServer, bob_developer, tmp_path: Path
) -> None:
    with schema_context("tenant_acme"):
        bob = User.objects.get(email="bob@acme.test")
        binding = RoleBinding.objects.get(user=bob, role__name="developer")
    base = asgi_server.url
    browser.set_window_size(1200, 760)  # room for the table and its buttons in the screenshot
    browser.get(f"{base}/t/acme/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin@acme.test")
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    _click(browser, By.CSS_SELECTOR, "input[type=submit]")

    # On bob's page, tick "Delete" on the developer row of his roles, then "Preview changes".
    browser.get(f"{base}/t/acme/admin/accounts/user/{bob.pk}/change/")
    row_id = browser.find_element(By.CSS_SELECTOR, f"#role_bindings-group input[value='{binding.pk}']").get_attribute(
        "id"
    )
    browser.find_element(By.ID, row_id.replace("-id", "-DELETE")).click()
    _click(browser, By.NAME, "_preview")

    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "access-diff")))
    assert _diff(browser) == {"bob@acme.test": {"gains": set(), "loses": {"demo/create_resource"}}}
    cell = browser.find_element(By.CSS_SELECTOR, "tr[data-user='bob@acme.test'] li.access-loss")
    assert cell.text == "− create_resource (demo)"
    _shot(browser, tmp_path, "change-preview")
    with schema_context("tenant_acme"):
        assert RoleBinding.objects.filter(pk=binding.pk).exists()  # nothing saved by the preview
        assert not AuditEvent.objects.filter(action="rbac.role_revoked", target_id=str(binding.pk)).exists()

    _click(browser, By.ID, "confirm-save")
    assert "was changed successfully" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    with schema_context("tenant_acme"):
        assert not RoleBinding.objects.filter(pk=binding.pk).exists()
        event = AuditEvent.objects.get(action="rbac.role_revoked", target_id=str(binding.pk))
    assert event.actor_label == "admin@acme.test"
    assert event.data["access_changes"]["users"] == [
        {"user": "bob@acme.test", "user_id": bob.pk, "gains": [], "loses": ["demo/create_resource"]}
    ]
    assert event.data["access_changes"]["complete"] is True
