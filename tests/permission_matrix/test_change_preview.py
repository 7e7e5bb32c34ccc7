"""The callers of the change preview (a "Preview changes" POST to an RBAC change page, and the delete page that
shows the diff of a deletion): anonymous, an end user (signed in, not staff), an auditor (staff who may read the
audit log), staff who may only view roles, the tenant's admin, and another tenant's admin. Only those who may
change (or delete) the object get a preview; nothing is ever saved by one."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Q
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from rbac import services
from rbac.models import Role, ToolPolicy
from tenants.models import Tenant
from tests.factories import ApplicationFactory, RoleFactory, ScopeFactory, ToolPolicyFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in
from tests.support.admin_form import management_form
from tests.support.matrix import grant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

PREVIEW = {"_preview": "Preview changes"}


def _requests(acme: Tenant) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, data): previews of a role edit, a user's roles, a tool policy; a role binding's delete page."""
    with schema_context(acme.schema_name):
        write = ScopeFactory(name="preview-write")
        role = RoleFactory(name="preview-role")
        role.scopes.set([write])
        holder = UserFactory(email="preview-holder@acme.test")
        binding = services.grant_role(actor="tests", role=role, user=holder)
        app = ApplicationFactory(slug="preview-app")
        policy = ToolPolicyFactory(application=app, tool_name="preview_tool", scopes=["preview-write"])
    root = "/t/acme/admin/"
    role_form = {"name": "preview-role", "description": "", "scopes": [], **management_form("bindings")}
    user_form = {
        "email": holder.email,
        "full_name": "",
        "is_active": "on",
        **management_form("role_bindings", total=1, initial=1),
        "role_bindings-0-id": binding.pk,
        "role_bindings-0-user": holder.pk,
        "role_bindings-0-role": role.pk,
        "role_bindings-0-DELETE": "on",
        **management_form("group_memberships"),
    }
    policy_form = {
        "application": app.pk,
        "tool_name": "preview_tool",
        "description": "",
        "roles": "",
        "groups": "",
        "scopes": "preview-write",
        "resources": "",
        "permissions": "",
        # is_enabled not sent: the policy disabled, the tool denied to everyone
        "approval": "none",
        "approval_role": "",
        "approval_count": 1,
        "approval_expiry": 600,
        "approval_window": 0,
    }
    return [
        ("post", f"{root}rbac/role/{role.pk}/change/", {**role_form, **PREVIEW}),
        ("post", f"{root}accounts/user/{holder.pk}/change/", {**user_form, **PREVIEW}),
        ("post", f"{root}rbac/toolpolicy/{policy.pk}/change/", {**policy_form, **PREVIEW}),
        ("get", f"{root}rbac/rolebinding/{binding.pk}/delete/", {}),
    ]


def _unchanged(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        role = Role.objects.get(name="preview-role")
        assert list(role.scopes.values_list("name", flat=True)) == ["preview-write"]
        assert role.bindings.filter(user__email="preview-holder@acme.test").exists()
        policy = ToolPolicy.objects.get(tool_name="preview_tool")
        assert policy.scopes == ["preview-write"] and policy.is_enabled
        # Only this test's objects: a live-server browser test commits the same actions for bob's developer role.
        assert not AuditEvent.objects.filter(
            Q(action="rbac.role_revoked", data__role="preview-role")
            | Q(action="rbac.role_changed", target_type="rbac.role", target_id=str(role.pk))
        ).exists()


def _send(client: Client, method: str, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, data) if method == "post" else client.get(url)


def test_anonymous_goes_to_the_login_page(acme: Tenant) -> None:
    for method, url, data in _requests(acme):
        response = _send(Client(), method, url, data)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/"), url
    _unchanged(acme)


def test_an_end_user_is_not_let_in(acme: Tenant) -> None:
    requests = _requests(acme)
    with schema_context(acme.schema_name):
        user = UserFactory(email="end-user@acme.test")
        grant(acme, user, ["rbac.change_role", "accounts.change_user", "rbac.change_toolpolicy"])  # without staff
    client = Client()
    assert (
        client.post("/t/acme/accounts/login/", {"username": user.email, "password": FACTORY_PASSWORD}).status_code
        == 302
    )
    for method, url, data in requests:
        response = _send(client, method, url, data)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    _unchanged(acme)


@pytest.mark.parametrize(
    "permissions",
    [
        ["audit.review_auditevent"],  # an auditor
        ["rbac.view_role", "accounts.view_user", "rbac.view_toolpolicy", "rbac.view_rolebinding"],  # view only
    ],
)
def test_staff_who_may_not_change_get_no_preview(acme: Tenant, permissions: list[str]) -> None:
    requests = _requests(acme)
    with schema_context(acme.schema_name):
        UserFactory(email="viewer@acme.test", is_staff=True)
        grant(acme, User.objects.get(email="viewer@acme.test"), permissions)
    client = log_in(acme, "viewer@acme.test", FACTORY_PASSWORD)
    for method, url, data in requests:
        response = _send(client, method, url, data)
        assert response.status_code == 403, url
        assert b"access-diff" not in response.content
    _unchanged(acme)


def test_the_tenant_admin_gets_each_preview_and_nothing_is_saved(acme: Tenant) -> None:
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    for method, url, data in _requests(acme):
        response = _send(client, method, url, data)
        assert response.status_code == 200, url
        text = response.content.decode()
        assert 'tr data-user="preview-holder@acme.test"' in text, url
        assert 'class="access-loss" data-tool="preview-app/preview_tool"' in text, url
    _unchanged(acme)


def test_another_tenants_admin_goes_to_the_login_page(acme: Tenant, globex: Tenant) -> None:
    client = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    for method, url, data in _requests(acme):
        response = _send(client, method, url, data)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/"), url
    _unchanged(acme)
