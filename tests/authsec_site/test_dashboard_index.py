"""The tenant dashboard's index and sidebar list the models by task (issue 25 point 6), not by app: six groups in a
fixed order, every registered model in exactly one of them, and nothing of Django's permission groups or DOT's raw
token tables beside the things an admin came for."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client
from django_tenants.utils import schema_context

from authsec_site.admin_sites import OTHER, TASK_GROUPS, TenantAdminSite, group_of
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in
from tests.support.matrix import grant

pytestmark = [pytest.mark.django_db]

GROUPS = ["Access", "Applications & tools", "Clients & sign-in", "Services & secrets", "Workloads", "Audit"]
CAPTION = re.compile(r'<caption>\s*<a href="([^"]+)" class="section">([^<]+)</a>')


def _captions(html: str) -> list[tuple[str, str]]:
    return [(url, name.replace("&amp;", "&")) for url, name in CAPTION.findall(html)]


def test_the_dashboard_is_the_task_grouped_site() -> None:
    assert isinstance(admin.site._wrapped, TenantAdminSite)  # noqa: SLF001 - the lazy default site, set up
    assert [group.name for group in TASK_GROUPS] == GROUPS


def test_every_registered_model_is_in_exactly_one_group() -> None:
    registered = {model._meta.label_lower for model in admin.site._registry}  # noqa: SLF001
    listed = [label for group in TASK_GROUPS for label in group.models]
    assert sorted(listed) == sorted(set(listed)), "a model is listed in two groups"
    assert {label for label in registered if group_of(label) is OTHER} == set(), "a registered model is in no group"
    assert set(listed) == registered, "a group names a model the dashboard does not serve"


def test_djangos_permission_groups_and_dots_tables_are_not_served() -> None:
    registered = {model._meta.label_lower for model in admin.site._registry}  # noqa: SLF001
    assert not {"auth.group", "auth.permission"} & registered
    assert not {label for label in registered if label.startswith("oauth2_provider.")}


def test_the_admins_index_shows_the_six_groups_in_order(acme: Tenant) -> None:
    html = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get("/t/acme/admin/").content.decode()
    main = html.split('id="content-main"', 1)[1]
    assert [name for _url, name in _captions(main)] == GROUPS
    assert [url for url, _name in _captions(main)] == [f"/t/acme/admin/tasks/{group.slug}/" for group in TASK_GROUPS]
    clients = main.split("Clients &amp; sign-in</a>", 1)[1].split("</table>", 1)[0]
    assert 'href="/t/acme/admin/tokens/"' in clients and "Tokens &amp; sessions" in clients
    for gone in ("/admin/auth/group/", "/admin/auth/permission/", "/admin/oauth2_provider/"):
        assert gone not in html
    assert "#008000" not in html and "tenant-app" not in html  # django-tenants' green captions are gone


def test_the_sidebar_of_a_model_page_is_grouped_too(acme: Tenant) -> None:
    html = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get("/t/acme/admin/rbac/role/").content.decode()
    sidebar = html.split('id="nav-sidebar"', 1)[1].split("</nav>", 1)[0]
    assert [name for _url, name in _captions(sidebar)] == GROUPS
    assert 'aria-current="page"' in sidebar.split("Access</a>", 1)[1].split("</table>", 1)[0]


def test_an_auditor_sees_only_the_audit_group(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        UserFactory(email="index-auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    html = log_in(acme, "index-auditor@acme.test", FACTORY_PASSWORD).get("/t/acme/admin/").content.decode()
    assert [name for _url, name in _captions(html.split('id="content-main"', 1)[1])] == ["Audit"]
    assert "/t/acme/admin/tokens/" not in html


def test_the_tokens_link_shows_for_any_kind_the_user_may_view(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="index-sessions@acme.test", is_staff=True)
    grant(acme, user, ["mcp_endpoint.view_authsession"])
    html = log_in(acme, "index-sessions@acme.test", FACTORY_PASSWORD).get("/t/acme/admin/").content.decode()
    main = html.split('id="content-main"', 1)[1]
    assert [name for _url, name in _captions(main)] == ["Clients & sign-in"]
    assert 'href="/t/acme/admin/tokens/"' in main


def test_a_group_page_lists_its_models(acme: Tenant) -> None:
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    page = client.get("/t/acme/admin/tasks/services/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "External services whose credentials live only in Vault" in html
    assert 'href="/t/acme/admin/services/service/"' in html.split('id="content-main"', 1)[1]
    assert client.get("/t/acme/admin/tasks/nothing-here/").status_code == 404


def test_a_group_page_with_nothing_the_user_may_see_is_404(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        UserFactory(email="group-auditor@acme.test", is_staff=True, dashboard_roles=["auditor"])
    client = log_in(acme, "group-auditor@acme.test", FACTORY_PASSWORD)
    assert client.get("/t/acme/admin/tasks/audit/").status_code == 200
    assert client.get("/t/acme/admin/tasks/access/").status_code == 404


def test_a_group_page_needs_a_dashboard_session(acme: Tenant, globex: Tenant) -> None:
    response = Client().get("/t/acme/admin/tasks/access/")
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/")
    outsider = log_in(globex, "admin@globex.test", ADMIN_PASSWORD).get("/t/acme/admin/tasks/access/")
    assert outsider.status_code == 302 and outsider["Location"].startswith("/t/acme/admin/login/")


def test_nothing_else_needs_djangos_groups_registered(acme: Tenant) -> None:
    """Dashboard roles replace Django's permission groups in a tenant (accounts.roles): their pages are 404."""
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    for url in ("/t/acme/admin/auth/group/", "/t/acme/admin/auth/permission/"):
        assert client.get(url).status_code == 404
