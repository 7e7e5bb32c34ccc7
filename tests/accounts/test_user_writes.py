"""Every write on a user goes through `accounts.services`, whichever dashboard it came from: one event per change
(`accounts.user_created/_changed/_deleted`, `accounts.password_changed`, `accounts.permission_group_*`), and
never a password in an event."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-pass-42"


def _events(schema: str, action: str, **fields: object) -> list[AuditEvent]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(action=action, **fields).order_by("seq"))


@pytest.fixture
def admin(acme: Tenant) -> Client:
    return log_in(acme, "admin@acme.test", ADMIN_PASSWORD)


@pytest.fixture
def platform_admin() -> Client:
    with schema_context("public"):
        User.objects.create_superuser("root@platform.test", "platform-pass-123")
    client = Client()
    response = client.post("/admin/login/", {"username": "root@platform.test", "password": "platform-pass-123"})
    assert response.status_code == 302
    return client


def test_the_password_page_sets_the_password_through_the_service(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        bob = UserFactory(email="bob@acme.test")
    url = f"/t/acme/admin/accounts/user/{bob.pk}/password/"
    response = admin.post(url, {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    with schema_context(acme.schema_name):
        assert User.objects.get(pk=bob.pk).check_password(NEW_PASSWORD)
    [event] = _events(acme.schema_name, "accounts.password_changed", target_id=str(bob.pk))
    assert (event.actor_label, event.data) == ("admin@acme.test", {"user": "bob@acme.test", "usable": True})
    assert NEW_PASSWORD not in json.dumps(event.data)

    # Disabling password sign-in is the same change, with `usable` False.
    response = admin.post(url, {"usable_password": "false", "unset-password": "1"})
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        assert not User.objects.get(pk=bob.pk).has_usable_password()
    assert _events(acme.schema_name, "accounts.password_changed", target_id=str(bob.pk))[-1].data["usable"] is False


def test_a_refused_password_writes_nothing(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        bob = UserFactory(email="bob@acme.test")
    url = f"/t/acme/admin/accounts/user/{bob.pk}/password/"
    response = admin.post(url, {"usable_password": "true", "password1": NEW_PASSWORD, "password2": "different-42"})
    assert response.status_code == 200
    with schema_context(acme.schema_name):
        assert User.objects.get(pk=bob.pk).check_password("pass-word-123")
    assert _events(acme.schema_name, "accounts.password_changed", target_id=str(bob.pk)) == []


def test_deleting_users_in_the_dashboard_is_one_transaction_naming_the_admin(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        gone = [UserFactory(email=f"gone{i}@acme.test") for i in range(2)]
    response = admin.post(
        "/t/acme/admin/accounts/user/",
        {"action": "delete_selected", "_selected_action": [user.pk for user in gone], "post": "yes"},
    )
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        assert not User.objects.filter(pk__in=[user.pk for user in gone]).exists()
    for user in gone:
        [deleted] = _events(acme.schema_name, "accounts.user_deleted", target_id=str(user.pk))
        assert (deleted.actor_label, deleted.data["before"]["email"], deleted.data["after"]) == (
            "admin@acme.test",
            user.email,
            None,
        )
        [revoked] = _events(acme.schema_name, "accounts.user_access_revoked", target_id=str(user.pk))
        assert (revoked.actor_label, revoked.data["reason"]) == ("admin@acme.test", "deleted")


def test_platform_users_and_permission_groups_are_written_by_the_services(platform_admin: Client) -> None:
    with schema_context("public"):
        permission = Permission.objects.get(codename="view_tenant")
    response = platform_admin.post("/admin/auth/group/add/", {"name": "Tenant viewers", "permissions": [permission.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]
    with schema_context("public"):
        group = Group.objects.get(name="Tenant viewers")
    [created] = _events("public", "accounts.permission_group_created", target_id=str(group.pk))
    assert created.actor_label == "root@platform.test"
    assert created.data["after"]["permissions"] == [str(permission)]

    response = platform_admin.post(
        "/admin/accounts/user/add/",
        {
            "email": "ops@platform.test",
            "full_name": "Ops",
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with schema_context("public"):
        ops = User.objects.get(email="ops@platform.test")
        assert ops.check_password(NEW_PASSWORD)
    [user_created] = _events("public", "accounts.user_created", target_id=str(ops.pk))
    assert user_created.data["after"]["email"] == "ops@platform.test" and "password" not in user_created.data["after"]

    change = {"email": "ops@platform.test", "full_name": "Ops", "is_active": "on", "is_staff": "on"}
    response = platform_admin.post(f"/admin/accounts/user/{ops.pk}/change/", {**change, "groups": [group.pk]})
    assert response.status_code == 302, response.content.decode()[:2000]
    [changed] = _events("public", "accounts.user_changed", target_id=str(ops.pk))
    assert changed.data["changes"] == {
        "groups": {"before": [], "after": ["Tenant viewers"]},
        "is_staff": {"before": False, "after": True},
    }

    assert platform_admin.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 302
    [deleted] = _events("public", "accounts.permission_group_deleted", target_id=str(group.pk))
    assert deleted.data["before"]["name"] == "Tenant viewers"
