"""Dashboard roles (accounts.roles) replace Django's permission groups in the tenant dashboard."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.roles import DashboardRole
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # UserFactory's
AUDITOR_PERMISSIONS = {
    "audit.review_auditevent",
    "audit.view_auditevent",
    "audit.view_auditcheckpoint",
    "audit.view_auditsettings",
    "audit.view_auditsink",
}
migration = importlib.import_module("accounts.migrations.0003_auditors_group_to_dashboard_role")


class _SchemaEditor:
    """What the data migration reads from its schema editor: the connection (and so the current schema)."""

    connection = connection


def log_in(tenant: Tenant, email: str, password: str = PASSWORD) -> Client:
    client = Client()
    response = client.post(f"/t/{tenant.slug}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client


def change_form(client: Client, url: str, **changes: Any) -> dict[str, Any]:
    """The user page's form as the browser would post it back (inlines unchanged), with `changes` applied."""
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled or name == "password":
            continue
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        for row in formset.forms:
            data.update({f"{row.prefix}-{name}": row[name].value() or "" for name in row.fields})
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


@pytest.fixture
def bob(acme: Tenant) -> User:
    with schema_context(acme.schema_name):
        return UserFactory(email="bob@acme.test", is_staff=True)


@pytest.fixture
def admin(acme: Tenant) -> Client:
    return log_in(acme, "admin@acme.test", ADMIN_PASSWORD)


def _user(acme: Tenant, pk: int) -> User:
    with schema_context(acme.schema_name):
        return User.objects.get(pk=pk)


# --- The migration of the "Auditors" group --------------------------------------------------------------------


def test_an_auditor_of_the_old_group_keeps_audit_access_after_the_migration(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        group = Group.objects.create(name="Auditors")  # as the old audit.services.ensure_auditor_group made it
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="audit", codename__in=[p.split(".")[1] for p in AUDITOR_PERMISSIONS]
            )
        )
        old = UserFactory(email="old-auditor@acme.test", is_staff=True)
        old.groups.add(group)
        assert log_in(acme, old.email).get("/t/acme/audit/").status_code == 200

        migration.group_to_role(apps, _SchemaEditor())
        migration.group_to_role(apps, _SchemaEditor())  # idempotent: nothing left to move

        old = User.objects.get(pk=old.pk)
        assert old.dashboard_roles == [DashboardRole.AUDITOR]
        assert not Group.objects.filter(name="Auditors").exists()
        assert old.get_all_permissions() == AUDITOR_PERMISSIONS
    client = log_in(acme, "old-auditor@acme.test")
    assert client.get("/t/acme/audit/").status_code == 200
    assert client.get("/t/acme/admin/rbac/role/").status_code == 403


def test_the_migration_can_be_reversed_into_the_group(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="role-auditor@acme.test", is_staff=True, dashboard_roles=[DashboardRole.AUDITOR])
        migration.role_to_group(apps, _SchemaEditor())
        user = User.objects.get(pk=user.pk)
        assert user.dashboard_roles == [] and list(user.groups.values_list("name", flat=True)) == ["Auditors"]
        # The group of that time: the role has gained rights since (audit.view_auditsink), the migration has not.
        assert user.get_all_permissions() == {f"{app}.{codename}" for app, codename in migration.AUDITOR_PERMISSIONS}


def test_the_migration_leaves_the_platform_schema_alone(db) -> None:  # type: ignore[no-untyped-def]
    with schema_context("public"):
        group = Group.objects.create(name="Auditors")
        UserFactory(email="platform-auditor@authsec.test").groups.add(group)
        migration.group_to_role(apps, _SchemaEditor())
        assert Group.objects.filter(name="Auditors").exists()


# --- No Django groups or permissions in the tenant dashboard ---------------------------------------------------


@pytest.mark.parametrize("path", ["auth/group/", "auth/group/add/", "auth/permission/"])
def test_the_tenant_dashboard_has_no_django_groups_or_permissions(admin: Client, path: str) -> None:
    assert admin.get(f"/t/acme/admin/{path}").status_code == 404


def test_the_dashboard_index_lists_no_django_groups(admin: Client) -> None:
    page = admin.get("/t/acme/admin/")
    assert page.status_code == 200
    app_list = page.context["app_list"]
    # The index lists models by task (authsec_site.admin_sites.TASK_GROUPS): RBAC's under Access.
    listed = {
        app["app_label"]: {model["model"]._meta.label_lower for model in app["models"] if "model" in model}
        for app in app_list
    }  # (a page that is not a model, such as Tokens & sessions, has no "model")
    every = set().union(*listed.values())
    assert not {"auth.group", "auth.permission"} & every  # Django's groups and permissions
    assert {"rbac.group", "rbac.role", "rbac.permission"} <= listed["access"]  # RBAC's stay
    assert "/t/acme/admin/auth/" not in page.content.decode()


def test_the_user_page_offers_roles_not_groups_or_permissions(admin: Client, bob: User) -> None:
    form = admin.get(f"/t/acme/admin/accounts/user/{bob.pk}/change/").context["adminform"].form
    assert "groups" not in form.fields and "user_permissions" not in form.fields and "is_superuser" not in form.fields
    assert [value for value, _label in form.fields["roles"].choices] == ["tenant_admin", "auditor"]


# --- Assigning roles on the user page ----------------------------------------------------------------------------


def test_the_auditor_role_chosen_on_the_user_page_grants_exactly_audit_reading(
    admin: Client, bob: User, acme: Tenant
) -> None:
    bob_client = log_in(acme, bob.email)
    assert bob_client.get("/t/acme/audit/").status_code == 403
    url = f"/t/acme/admin/accounts/user/{bob.pk}/change/"
    response = admin.post(url, change_form(admin, url, roles=["auditor"]))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    saved = _user(acme, bob.pk)
    assert (saved.dashboard_roles, saved.is_superuser) == (["auditor"], False)
    assert saved.get_all_permissions() == AUDITOR_PERMISSIONS
    assert bob_client.get("/t/acme/audit/").status_code == 200
    assert bob_client.get("/t/acme/admin/rbac/role/").status_code == 403
    assert bob_client.get("/t/acme/admin/accounts/user/").status_code == 403
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="accounts.user_changed", target_id=str(bob.pk)).latest("seq")
    assert event.actor_label == "admin@acme.test"
    assert event.data["changes"]["dashboard_roles"] == {"before": [], "after": ["auditor"]}
    assert event.data["roles"] == {"before": [], "after": ["auditor"]}

    # Taking the role away takes the access away.
    response = admin.post(url, change_form(admin, url, roles=[]))
    assert response.status_code == 302
    assert bob_client.get("/t/acme/audit/").status_code == 403


def test_the_tenant_admin_role_makes_a_superuser_of_the_tenant(admin: Client, bob: User, acme: Tenant) -> None:
    url = f"/t/acme/admin/accounts/user/{bob.pk}/change/"
    assert admin.post(url, change_form(admin, url, roles=["tenant_admin"])).status_code == 302
    assert _user(acme, bob.pk).is_superuser is True
    bob_client = log_in(acme, bob.email)
    assert bob_client.get("/t/acme/admin/rbac/role/").status_code == 200
    assert bob_client.get("/t/acme/audit/").status_code == 200
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="accounts.user_changed", target_id=str(bob.pk)).latest("seq")
    assert event.data["changes"]["is_superuser"] == {"before": False, "after": True}
    assert event.data["roles"] == {"before": [], "after": ["tenant_admin"]}


def test_a_role_needs_dashboard_access(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        carol = UserFactory(email="carol@acme.test", is_staff=False)
    url = f"/t/acme/admin/accounts/user/{carol.pk}/change/"
    response = admin.post(url, change_form(admin, url, roles=["auditor"]))
    assert response.status_code == 200
    assert "needs “Staff status”" in str(response.context["adminform"].form.errors["roles"])
    assert _user(acme, carol.pk).dashboard_roles == []


def test_a_tenant_admin_cannot_take_the_role_from_themselves(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        me = User.objects.get(email="admin@acme.test")
    url = f"/t/acme/admin/accounts/user/{me.pk}/change/"
    response = admin.post(url, change_form(admin, url, roles=[]))
    assert response.status_code == 200
    assert _user(acme, me.pk).is_superuser is True


def test_staff_who_may_edit_users_cannot_give_roles(bob: User, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        bob.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user"]))
        carol = UserFactory(email="carol@acme.test", is_staff=True)
    bob_client = log_in(acme, bob.email)
    for target in (carol, bob):  # neither someone else nor themselves
        url = f"/t/acme/admin/accounts/user/{target.pk}/change/"
        form = bob_client.get(url).context["adminform"].form
        assert form.fields["roles"].disabled
        data = change_form(bob_client, url, roles=["tenant_admin", "auditor"], full_name="Edited")
        assert bob_client.post(url, data).status_code == 302
        saved = _user(acme, target.pk)
        assert saved.full_name == "Edited"  # the rest of the page was saved…
        assert (saved.is_superuser, saved.dashboard_roles) == (False, [])  # …but no role


def test_an_admin_of_another_tenant_cannot_give_roles_here(bob: User, acme: Tenant, globex: Tenant) -> None:
    globex_admin = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    url = f"/t/acme/admin/accounts/user/{bob.pk}/change/"
    response = globex_admin.post(url, {"email": bob.email, "is_staff": "on", "roles": ["tenant_admin", "auditor"]})
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/")
    saved = _user(acme, bob.pk)
    assert (saved.is_superuser, saved.dashboard_roles) == (False, [])


def test_anonymous_visitors_cannot_give_roles(bob: User, acme: Tenant) -> None:
    url = f"/t/acme/admin/accounts/user/{bob.pk}/change/"
    response = Client().post(url, {"email": bob.email, "is_staff": "on", "roles": ["auditor"]})
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/")
    assert _user(acme, bob.pk).dashboard_roles == []


def test_an_inactive_auditor_has_no_permissions(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="gone@acme.test", is_staff=True, is_active=False, dashboard_roles=["auditor"])
        assert user.get_all_permissions() == set() and not user.has_perm("audit.review_auditevent")
