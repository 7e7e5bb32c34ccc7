"""Management API helpers: clients signed in to a tenant, Django permissions for a user, audit events by action."""

from __future__ import annotations

from django.contrib.auth.models import Permission as DjangoPermission
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.support.accounts import ADMIN_PASSWORD


def login(tenant: str, email: str, password: str = ADMIN_PASSWORD) -> Client:
    """A client logged in through the tenant's real login form."""
    client = Client()
    response = client.post(f"/t/{tenant}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} at {tenant} failed"
    return client


def client_for(tenant: Tenant, user: User) -> Client:
    client = Client()
    with schema_context(tenant.schema_name):
        client.force_login(user)
    return client


def grant_perms(user: User, *perms: str) -> None:
    """Give `user` Django permissions such as ``rbac.view_role`` (current schema)."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(DjangoPermission.objects.get(content_type__app_label=app_label, codename=codename))


def events(tenant: Tenant, action: str, target_id: object = None) -> list[AuditEvent]:
    """Events of one action (about one target when given: committed events of other tests share the log)."""
    with schema_context(tenant.schema_name):
        found = AuditEvent.objects.filter(action=action)
        if target_id is not None:
            found = found.filter(target_id=str(target_id))
        return list(found.order_by("id"))
