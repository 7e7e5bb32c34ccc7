"""The callers of the tenant dashboard's home (/t/<tenant>/admin/): anonymous, an end user (signed in, not staff), an
auditor, the tenant's admin, another tenant's admin, and staff holding one view permission. Each card shows only to a
viewer who may open the list behind its numbers; nobody outside the tenant's staff gets the page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tests.factories import ApplicationFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in
from tests.support.matrix import grant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

HOME = "/t/acme/admin/"
CARDS = ("applications", "counts", "waiting", "denials", "rotation", "svids", "verification", "health")


def cards(page: str) -> set[str]:
    return set(re.findall(r'<section class="home-card[^"]*" id="home-(\w+)"', page))


def counted(page: str) -> set[str]:
    return set(re.findall(r'data-count="([a-z_]+)"', page))


def test_anonymous_goes_to_the_login_page() -> None:
    response = Client().get(HOME)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/")


def test_an_end_user_goes_to_the_login_page(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="end-user@acme.test")
    grant(acme, user, ["accounts.view_user", "audit.review_auditevent"])  # permissions without staff: nothing
    client = Client()
    response = client.post("/t/acme/accounts/login/", {"username": user.email, "password": FACTORY_PASSWORD})
    assert response.status_code == 302
    response = client.get(HOME)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_auditor_sees_the_audit_cards_only(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        UserFactory(email="auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    page = log_in(acme, "auditor@acme.test", FACTORY_PASSWORD).get(HOME).content.decode()
    assert cards(page) == {"waiting", "denials", "verification"}
    assert counted(page) == {"pending_approvals", "denials"}  # their own approval queue; no counts of others' lists
    assert "/t/acme/audit/?outcome=deny" in page


def test_staff_with_one_permission_see_its_card(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="svid-viewer@acme.test", is_staff=True)
    grant(acme, user, ["workloads.view_workload"])
    page = log_in(acme, "svid-viewer@acme.test", FACTORY_PASSWORD).get(HOME).content.decode()
    assert cards(page) == {"waiting", "svids"}
    assert counted(page) == {"pending_approvals", "svids_expiring", "svids_expired"}


def test_the_tenant_admin_sees_every_card_escaped(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        ApplicationFactory(slug="home-escape", name="<b>Home</b>")
    page = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get(HOME).content.decode()
    assert cards(page) == set(CARDS)
    assert counted(page) >= {
        "applications", "users", "tools", "clients", "pending_clients", "pending_approvals", "drifted_tools",
        "rejected_tools", "denials", "rotation_failed", "svids_expiring", "svids_expired",
    }  # fmt: skip
    assert "<b>Home</b>" not in page and "&lt;b&gt;Home&lt;/b&gt;" in page
    assert 'class="addlink"' in page  # the model list (admin/app_list.html) is still below the cards


def test_another_tenants_admin_goes_to_the_login_page(globex: Tenant) -> None:
    client = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    assert client.get("/t/globex/admin/").status_code == 200  # at home there
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/")
