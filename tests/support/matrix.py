"""The permission matrix of a dashboard page or a management API endpoint: anonymous, staff without the
permission, staff with exactly the permission, and the other tenant's admin (the callers NetBox's
`utilities/testing/views.py` tests every view with).

    matrix = PermissionMatrix.of(acme, globex)
    page = matrix.check(url, ["services.view_service"])  # the permitted staff's 200 response

    api = ApiPermissionMatrix.of(acme, globex)
    api.check("post", "/t/acme/api/scopes/", ["rbac.add_scope"], data={"name": "deploy"}, expect=201)

Each `check` first takes every permission away from the staff member, so one matrix checks many pages in a
row; the test goes on with `matrix.staff` (then holding the permissions), `matrix.other_admin` and the response
for what is particular to the page. `PermissionMatrix.platform` is the same for the platform admin (/admin/),
whose "other" caller is a tenant's admin.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Permission as DjangoPermission
from django.http import HttpResponse
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in

NOT_RUN = "No action selected."  # Django's message when a posted action is not offered to the user


def grant(tenant: Tenant, user: User, permissions: Iterable[str]) -> None:
    """Give `user` Django permissions such as ``services.view_service`` in `tenant`'s schema."""
    with schema_context(tenant.schema_name):
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(
                DjangoPermission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke_all(tenant: Tenant, user: User) -> None:
    with schema_context(tenant.schema_name):
        user.user_permissions.clear()


def admin_root(tenant: Tenant) -> str:
    """Where `tenant`'s dashboard is: /t/<slug>/admin/, or /admin/ for the platform (public schema)."""
    return "/admin/" if tenant.is_public else f"{tenant.url_prefix}admin/"


def _send(client: Client, method: str, url: str, data: Any, **extra: Any) -> Any:
    if method == "get":
        return client.get(url, data, **extra)
    if method == "post" and not extra.pop("json", True):
        return client.post(url, data or {}, **extra)  # a form post, as a browser sends it
    return getattr(client, method)(url, data, content_type="application/json", **extra)


def _assert_to_login(response: Any, root: str, who: str) -> None:
    assert response.status_code == 302, f"{who}: {response.status_code}, not a redirect to the login page"
    assert response["Location"].startswith(f"{root}login/?next="), f"{who}: redirected to {response['Location']}"


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

    @classmethod
    def platform(
        cls, public: Tenant, tenant: Tenant, staff_email: str = "matrix-staff@platform.test"
    ) -> PermissionMatrix:
        """The platform admin's matrix: a platform staff member, and `tenant`'s first admin as the outsider."""
        with schema_context(public.schema_name):
            user = UserFactory(email=staff_email, is_staff=True)
        return cls(
            tenant=public,
            staff_user=user,
            staff=log_in(public, staff_email, FACTORY_PASSWORD),
            other_admin=log_in(tenant, f"admin@{tenant.slug}.test", ADMIN_PASSWORD),
        )

    @property
    def root(self) -> str:
        return admin_root(self.tenant)

    def outsider(self) -> Client:
        """A client with the other tenant's admin's cookies. The test client sends every cookie to every path (a
        browser sends them only under /t/<that tenant>/), and Django deletes a session cookie it does not know: a
        copy keeps `other_admin` signed in at home."""
        client = Client()
        client.cookies = copy.deepcopy(self.other_admin.cookies)
        return client

    def check(
        self,
        url: str,
        permissions: Iterable[str],
        *,
        other_url: str | None = None,
        other_status: tuple[int, ...] = (302, 404),
        method: str = "get",
        data: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> HttpResponse:
        """Anonymous: 302 to the login page; staff without `permissions`: 403; with exactly them: `expect` (the
        response is returned); the other tenant's admin at `other_url` (one of `other_status`), or at `url` itself,
        where that session is no session: 302 to this dashboard's login page."""
        revoke_all(self.tenant, self.staff_user)
        _assert_to_login(_send(Client(), method, url, data, json=False), self.root, f"anonymous at {url}")
        refused = _send(self.staff, method, url, data, json=False).status_code
        assert refused == 403, f"staff without {list(permissions)} at {url}: {refused}"
        grant(self.tenant, self.staff_user, permissions)
        page = _send(self.staff, method, url, data, json=False)
        assert page.status_code == expect, f"staff with {list(permissions)} at {url}: {page.status_code}"
        if other_url is None:
            _assert_to_login(_send(self.outsider(), method, url, data, json=False), self.root, f"outsider at {url}")
        else:
            other = _send(self.outsider(), method, other_url, data, json=False).status_code
            assert other in other_status, f"the other tenant's admin got {other}"
        return page

    def check_action(
        self,
        changelist: str,
        action: str,
        pk: object,
        view: Iterable[str],
        permissions: Iterable[str] | None,
        done: str = "",
        *,
        gate: bool = True,
    ) -> HttpResponse:
        """An admin action posted on the changelist for the object `pk`. Anonymous: to the login page; staff
        without any permission: 403; with only `view`: the action is not offered and does not run (no `done` on
        the page); the outsider: to the login page; with `view` and `permissions`: it runs (the followed response,
        showing `done`, is returned). `permissions=None`: the action is offered to no one, so the check ends there.
        `gate=False` skips the callers refused before any action is looked at (checked with a first action)."""
        view = list(view)
        data = {"action": action, "_selected_action": [str(pk)]}
        revoke_all(self.tenant, self.staff_user)
        if gate:
            _assert_to_login(Client().post(changelist, data), self.root, f"anonymous {action}")
            refused = self.staff.post(changelist, data).status_code
            assert refused == 403, f"{action} by staff without permissions: {refused}"
            _assert_to_login(self.outsider().post(changelist, data), self.root, f"outsider {action}")
        grant(self.tenant, self.staff_user, view)
        page = self.staff.post(changelist, data, follow=True)
        text = page.content.decode()
        assert page.status_code == 200, f"{action} with {view}: {page.status_code}"
        assert f'<option value="{action}"' not in text, f"{action} offered with {view} only"
        assert not done or done not in text, f"{action} ran with {view} only"
        if permissions is None:
            return page
        permissions = list(permissions)
        grant(self.tenant, self.staff_user, permissions)
        page = self.staff.post(changelist, data, follow=True)
        text = page.content.decode()
        assert page.status_code == 200, f"{action} with {[*view, *permissions]}: {page.status_code}"
        assert NOT_RUN not in text, f"{action} was not offered with {[*view, *permissions]}"
        assert done in text, f"{action} with {[*view, *permissions]}: {done!r} not on the page"
        return page


@dataclass
class ApiPermissionMatrix:
    """The matrix of one management API endpoint, through the API's session authentication: the staff member and
    the other tenant's admin signed in through their dashboards' login forms (a bearer token with the `admin`
    scope stands for its user the same way: tests/oauth/test_api_bearer.py)."""

    tenant: Tenant
    staff_user: User
    staff: Client
    other_admin: Client
    outsider = PermissionMatrix.outsider

    @classmethod
    def of(cls, tenant: Tenant, other: Tenant, staff_email: str | None = None) -> ApiPermissionMatrix:
        dashboard = PermissionMatrix.of(tenant, other, staff_email or f"api-staff@{tenant.slug}.test")
        return cls(tenant, dashboard.staff_user, dashboard.staff, dashboard.other_admin)

    def check(
        self,
        method: str,
        url: str,
        permissions: Iterable[str],
        *,
        data: Any = None,
        expect: int = 200,
    ) -> Any:
        """Anonymous: 401 with a Bearer challenge; staff without `permissions`: 403; with exactly them: `expect`
        (the response is returned); the other tenant's admin at `url`: 401, that session being no session here."""
        permissions = list(permissions)
        revoke_all(self.tenant, self.staff_user)
        anonymous = _send(Client(), method, url, data)
        assert anonymous.status_code == 401, f"anonymous {method} {url}: {anonymous.status_code}"
        assert anonymous["WWW-Authenticate"].startswith("Bearer")
        refused = _send(self.staff, method, url, data)
        assert refused.status_code == 403, f"staff without {permissions}, {method} {url}: {refused.status_code}"
        grant(self.tenant, self.staff_user, permissions)
        response = _send(self.staff, method, url, data)
        assert response.status_code == expect, (
            f"staff with {permissions}, {method} {url}: {response.status_code} {response.content[:300]!r}"
        )
        other = _send(self.outsider(), method, url, data).status_code
        assert other == 401, f"the other tenant's admin, {method} {url}: {other}"
        return response
