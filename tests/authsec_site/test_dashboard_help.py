"""Every page of the dashboard says what it is for (authsec_site.dashboard_help): help under each changelist's and
form's title, and a friendly empty state instead of an empty table."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.utils.html import escape
from django_tenants.utils import schema_context

from authsec_site.admin_sites import platform_admin
from authsec_site.dashboard_help import HELP
from tenants.models import Tenant
from tests.factories import RoleFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in

pytestmark = [pytest.mark.django_db]


def _labels(site: admin.AdminSite) -> set[str]:
    return {model._meta.label_lower for model in site._registry}  # noqa: SLF001 - what the site serves


def test_every_model_page_of_both_sites_has_help() -> None:
    served = _labels(admin.site) | _labels(platform_admin)
    assert served - set(HELP) == set(), "a model page without help"
    assert set(HELP) - served == set(), "help for a model no site serves"
    for label, entry in HELP.items():
        assert entry.what.strip() and entry.how_to_add.strip(), label


def test_an_empty_changelist_says_what_it_is_and_how_to_add_one(acme: Tenant) -> None:
    page = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get("/t/acme/admin/workloads/workload/")
    assert page.status_code == 200
    html = page.content.decode()
    empty = html.split('id="empty-state"', 1)[1].split("</p>", 1)[0]
    assert "No workloads yet." in empty
    assert escape(HELP["workloads.workload"].what) in empty and "Press “Add workload”" in empty
    assert 'id="result_list"' not in html


def test_a_search_without_results_says_so_escaped(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        RoleFactory(name="help-role")
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    html = client.get("/t/acme/admin/rbac/role/", {"q": "<i>nope</i>"}).content.decode()
    empty = html.split('id="empty-state"', 1)[1].split("</p>", 1)[0]
    assert "Nothing matches “&lt;i&gt;nope&lt;/i&gt;”" in empty and "<i>nope</i>" not in html
    listed = client.get("/t/acme/admin/rbac/role/").content.decode()
    assert 'id="empty-state"' not in listed and "help-role" in listed and 'id="result_list"' in listed
    assert escape(HELP["rbac.role"].what) in listed.split('id="model-help"', 1)[1].split("</p>", 1)[0]


def test_forms_carry_the_help_and_the_add_form_how_to_add(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        role = RoleFactory(name="help-form-role")
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    add = client.get("/t/acme/admin/rbac/role/add/").content.decode()
    shown = add.split('id="model-help"', 1)[1].split("</p>", 1)[0]
    assert escape(HELP["rbac.role"].what) in shown and escape(HELP["rbac.role"].how_to_add) in shown
    change = client.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode()
    shown = change.split('id="model-help"', 1)[1].split("</p>", 1)[0]
    assert escape(HELP["rbac.role"].what) in shown and escape(HELP["rbac.role"].how_to_add) not in shown


def test_the_platform_admin_has_help_too() -> None:
    public = Tenant.objects.get(schema_name="public")
    with schema_context("public"):
        UserFactory(email="help-root@platform.test", is_staff=True, is_superuser=True)
    html = log_in(public, "help-root@platform.test", FACTORY_PASSWORD).get("/admin/tenants/tenant/").content.decode()
    assert escape(HELP["tenants.tenant"].what) in html.split('id="model-help"', 1)[1].split("</p>", 1)[0]
