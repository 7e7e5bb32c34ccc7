"""Dashboard roles: the named staff rights an admin chooses on a user's page (instead of Django's permission groups).

- **Tenant admin**: every right in this tenant's dashboard, the API and the audit pages. Stored as the user's
  `is_superuser` flag (so the tenant's first admin, made by `create_superuser`, holds it).
- **Auditor**: reads and exports the audit log, reads the audit settings and SIEM sinks; changes nothing, sees no RBAC.
  Stored in `User.dashboard_roles`; `accounts.backends.DashboardRoleBackend` turns it into permissions.

Every role needs dashboard access (`is_staff`) to be used. Only a tenant admin may change roles.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class DashboardRole(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    AUDITOR = "auditor", "Auditor"


ROLE_HELP = {
    DashboardRole.TENANT_ADMIN: "every right in this tenant: users, roles, RBAC, clients, services, audit log",
    DashboardRole.AUDITOR: "reads and exports the audit log, reads the audit settings and SIEM sinks; changes nothing",
}

# The permissions each role stored in `User.dashboard_roles` grants (Tenant admin is a superuser: all of them).
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    DashboardRole.AUDITOR: frozenset(
        {
            "audit.review_auditevent",
            "audit.view_auditevent",
            "audit.view_auditcheckpoint",
            "audit.view_auditsettings",
            "audit.view_auditsink",  # delivery status and lag of the SIEM stream; never a secret
        }
    ),
}
STORED_ROLES = tuple(ROLE_PERMISSIONS)  # the values `User.dashboard_roles` may hold


def roles_of(user: Any) -> list[str]:
    """The user's dashboard roles, in the order of `DashboardRole`."""
    held = set(user.dashboard_roles or ())
    if user.is_superuser:
        held.add(DashboardRole.TENANT_ADMIN)
    return [role.value for role in DashboardRole if role in held]


def apply_roles(user: Any, roles: list[str]) -> None:
    """Give `user` exactly `roles` (not saved): Tenant admin sets `is_superuser`, the others `dashboard_roles`."""
    chosen = set(roles)
    unknown = chosen - set(DashboardRole.values)
    if unknown:
        raise ValueError(f"Unknown dashboard roles: {sorted(unknown)}")
    user.is_superuser = DashboardRole.TENANT_ADMIN in chosen
    user.dashboard_roles = [role for role in STORED_ROLES if role in chosen]


def role_permissions(roles: list[str]) -> set[str]:
    """The permissions (`app_label.codename`) the stored roles `roles` grant."""
    return {perm for role in roles for perm in ROLE_PERMISSIONS.get(role, ())}
