"""The permission matrix of a tenant dashboard page: anonymous, staff without the permission, staff with it,
and the other tenant's admin (the four callers NetBox's `utilities/testing/views.py` tests every view with).

    matrix = PermissionMatrix.of(acme, globex)
    page = matrix.check(url, ["services.view_service"], other_url=...)  # the permitted staff's 200 response

`check` asserts the four answers; the test goes on with `matrix.staff` (now holding the permissions),
`matrix.other_admin` and the page for what is particular to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import Permission as DjangoPermission
from django.http import HttpResponse
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in


def grant(tenant: Tenant, user: User, permissions: Iterable[str]) -> None:
    """Give `user` Django permissions such as ``services.view_service`` in `tenant`'s schema."""
    with schema_context(tenant.schema_name):
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(
                DjangoPermission.objects.get(content_type__app_label=app_label, codename=codename)
            )


@dataclass
class PermissionMatrix:
    tenant: Tenant
    staff_user: User  # staff of `tenant` with no permission until `check` grants them
    staff: Client  # signed in as `staff_user` at `tenant`'s dashboard
    other_admin: Client  # the other tenant's first admin, signed in at the other tenant's dashboard

    @classmethod
    def of(cls, tenant: Tenant, other: Tenant, staff_email: str | None = None) -> PermissionMatrix:
        email = staff_email or f"matrix-staff@{tenant.slug}.test"
        with schema_context(tenant.schema_name):
            user = UserFactory(email=email, is_staff=True)
        return cls(
            tenant=tenant,
            staff_user=user,
            staff=log_in(tenant, email),
            other_admin=log_in(other, f"admin@{other.slug}.test", ADMIN_PASSWORD),
        )

    def check(
        self,
        url: str,
        permissions: Iterable[str],
        *,
        other_url: str | None = None,
        other_status: tuple[int, ...] = (302, 404),
    ) -> HttpResponse:
        """Anonymous: 302 to the login page; staff without `permissions`: 403; with them: 200 (returned); the
        other tenant's admin at `other_url` (default: `url` itself, where that session is no session): one of
        `other_status`."""
        assert Client().get(url).status_code == 302, "anonymous: to the login page"
        assert self.staff.get(url).status_code == 403, "staff without the permission"
        grant(self.tenant, self.staff_user, permissions)
        page = self.staff.get(url)
        assert page.status_code == 200, "staff with the permission"
        other = self.other_admin.get(other_url or url).status_code
        assert other in other_status, f"the other tenant's admin got {other}"
        return page
