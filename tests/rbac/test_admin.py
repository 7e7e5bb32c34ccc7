"""The RBAC dashboard: permission matrix of the extra pages, before/after audit, role deletion, validation."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from rbac import services
from rbac.demo import seed_rbac
from rbac.models import Application, Role, RoleBinding, ToolPolicy
from tenants.models import Tenant
from tests.factories import RoleFactory, ScopeFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import management_form
from tests.support.matrix import PermissionMatrix

pytestmark = pytest.mark.django_db


def _client(tenant: str, email: str, password: str = ADMIN_PASSWORD) -> Client:
    client = Client()
    response = client.post(f"/t/{tenant}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client


@pytest.fixture
def demo(in_acme: Tenant):  # type: ignore[no-untyped-def]
    users = {email: UserFactory(email=email) for email in ("alice@acme.test", "bob@acme.test")}
    seed_rbac("acme")
    return users


@pytest.fixture
def staff_without_perms(in_acme: Tenant):  # type: ignore[no-untyped-def]
    user = UserFactory(email="staff@acme.test", is_staff=True)
    user.set_password("staff-pass-123")
    user.save()
    return user


def test_effective_permissions_page_matrix(demo, acme: Tenant, globex: Tenant) -> None:  # type: ignore[no-untyped-def]
    bob = demo["bob@acme.test"]
    url = f"/t/acme/admin/accounts/user/{bob.pk}/effective/"
    matrix = PermissionMatrix.of(acme, globex, staff_email="staff@acme.test")
    page = matrix.check(
        url,
        ["accounts.view_user", "rbac.view_toolpolicy"],
        # Another tenant: the id means nothing there.
        other_url=f"/t/globex/admin/accounts/user/{bob.pk}/effective/",
        other_status=(404,),
    )
    assert 'data-kind="role" data-name="analyst"' in page.content.decode()
    admin = _client("acme", "admin@acme.test")
    assert "view_analytics" in admin.get(url).content.decode()


def test_simulator_decides_typed_claims_and_reports_unknown_names(demo) -> None:  # type: ignore[no-untyped-def]
    admin = _client("acme", "admin@acme.test")
    page = admin.get(
        "/t/acme/admin/rbac/application/simulator/",
        {"application": "demo", "scopes": "read", "resources": "analytics", "roles": "Admin"},
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "roles: Admin" in html  # case-sensitive: "Admin" is not "admin"
    assert 'data-tool="view_analytics"' in html
    row = html.split('data-tool="view_analytics"')[1].split("</tr>")[0]
    assert "Allowed" in row
    row = html.split('data-tool="admin_panel"')[1].split("</tr>")[0]
    assert "Denied" in row


def test_simulator_for_a_user_matches_the_effective_page(demo) -> None:  # type: ignore[no-untyped-def]
    admin = _client("acme", "admin@acme.test")
    html = admin.get(
        "/t/acme/admin/rbac/application/simulator/", {"application": "demo", "user": "alice@acme.test"}
    ).content.decode()
    assert "Decisions for alice@acme.test" in html
    assert "Allowed" in html.split('data-tool="engineering_tools"')[1].split("</tr>")[0]


def test_simulator_requires_permission(staff_without_perms) -> None:  # type: ignore[no-untyped-def]
    staff = _client("acme", "staff@acme.test", "staff-pass-123")
    assert staff.get("/t/acme/admin/rbac/application/simulator/").status_code == 403


def test_role_change_is_audited_with_before_and_after(in_acme: Tenant) -> None:
    role = RoleFactory(name="auditor-role", description="old")
    read = ScopeFactory(name="read")
    admin = _client("acme", "admin@acme.test")
    response = admin.post(
        f"/t/acme/admin/rbac/role/{role.pk}/change/",
        {
            "name": "auditor-role",
            "description": "new",
            "scopes": [read.pk],
            "resources": [],
            "permissions": [],
            **management_form("bindings"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="rbac.role_changed", target_id=str(role.pk))
    assert event.actor_label == "admin@acme.test"
    assert event.data["changes"]["description"] == {"before": "old", "after": "new"}
    assert event.data["changes"]["scopes"] == {"before": [], "after": ["read"]}


def test_inline_binding_added_in_the_admin_is_audited(in_acme: Tenant) -> None:
    role = RoleFactory(name="ops")
    user = UserFactory(email="ops.person@acme.test")
    admin = _client("acme", "admin@acme.test")
    response = admin.post(
        f"/t/acme/admin/rbac/role/{role.pk}/change/",
        {
            "name": "ops",
            "description": "",
            **management_form("bindings", total=1),
            "bindings-0-user": user.pk,
            "bindings-0-group": "",
            "bindings-0-role": role.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert RoleBinding.objects.filter(role=role, user=user).exists()
    event = AuditEvent.objects.get(action="rbac.role_granted", target_id=str(RoleBinding.objects.get(role=role).pk))
    assert {key: event.data[key] for key in ("role", "user", "group")} == {
        "role": "ops",
        "user": "ops.person@acme.test",
        "group": None,
    }
    # A dashboard write records whose access it changed (the role grants nothing: no one's).
    assert event.data["access_changes"] == {"users": [], "users_checked": 1, "users_affected": 1, "complete": True}


def test_deleting_a_role_removes_its_bindings_and_audits_them(demo) -> None:  # type: ignore[no-untyped-def]
    role = Role.objects.get(name="analyst")
    admin = _client("acme", "admin@acme.test")
    response = admin.post(f"/t/acme/admin/rbac/role/{role.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Role.objects.filter(name="analyst").exists()
    assert not RoleBinding.objects.filter(role_id=role.pk).exists()
    event = AuditEvent.objects.get(action="rbac.role_deleted", target_id=str(role.pk))
    assert event.data["bindings_removed"] == ["bob@acme.test"]
    assert event.data["before"]["name"] == "analyst"


def test_tool_policy_form_rejects_unknown_names(demo) -> None:  # type: ignore[no-untyped-def]
    application = Application.objects.get(slug="demo")
    admin = _client("acme", "admin@acme.test")
    response = admin.post(
        "/t/acme/admin/rbac/toolpolicy/add/",
        {
            "application": application.pk,
            "tool_name": "new_tool",
            "roles": "admin,Admin,ghost",
            "groups": "",
            "scopes": "",
            "resources": "",
            "permissions": "",
            "is_enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "Unknown roles: Admin, ghost." in response.content.decode()
    assert not ToolPolicy.objects.filter(tool_name="new_tool").exists()


def test_bulk_disable_action_denies_the_tools(demo) -> None:  # type: ignore[no-untyped-def]
    policy = ToolPolicy.objects.get(tool_name="hello")
    admin = _client("acme", "admin@acme.test")
    response = admin.post("/t/acme/admin/rbac/toolpolicy/", {"action": "disable", "_selected_action": [policy.pk]})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.is_enabled is False
    assert AuditEvent.objects.filter(action="rbac.tool_policy_changed", target_id=str(policy.pk)).exists()


def test_role_names_are_unique_per_tenant_not_across_tenants(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        RoleFactory(name="shared-name")
    with schema_context(globex.schema_name):
        RoleFactory(name="shared-name")  # a separate schema: no conflict
        assert Role.objects.filter(name="shared-name").count() == 1


def test_grant_role_twice_changes_nothing(in_acme: Tenant) -> None:
    user, role = UserFactory(), RoleFactory(name="once")
    first = services.grant_role(actor="tests", role=role, user=user)
    assert services.grant_role(actor="tests", role=role, user=user) == first
    assert AuditEvent.objects.filter(action="rbac.role_granted", target_id=str(first.pk)).count() == 1
