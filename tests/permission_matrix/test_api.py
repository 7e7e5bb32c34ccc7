"""The permission matrix of every management API route (/t/<tenant>/api/): list, retrieve, create, update,
partial update, delete and each custom action of every viewset, as anonymous (401 with a Bearer challenge), staff
without the permission (403), staff with exactly the permission (200, 201 or 204), and the other tenant's admin
(401: that session is no session here; at home they neither list nor find this tenant's rows).

Routes are found by URL name in the `api` namespace, not by module, and `test_every_api_route_has_a_matrix_row`
fails when a viewset, an action or an HTTP method is added without its row below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import get_resolver, reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from rbac import services as rbac_services
from rbac.models import ToolPin
from tenants.models import Tenant
from tests.factories import (
    ApplicationFactory,
    GroupFactory,
    PermissionFactory,
    ResourceFactory,
    RoleFactory,
    ScopeFactory,
    ToolPolicyFactory,
    UserFactory,
)
from tests.support.matrix import ApiPermissionMatrix

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

MARK = "matrix-mark"


@pytest.fixture
def world(acme: Tenant) -> dict[str, Any]:
    """One row of every kind in acme, named after MARK; `ids` by viewset (URL basename)."""
    with schema_context(acme.schema_name):
        scope = ScopeFactory(name=f"{MARK}-scope")
        resource = ResourceFactory(name=f"{MARK}-resource")
        permission = PermissionFactory(resource=resource, action="read")
        role = RoleFactory(name=f"{MARK}-role")
        group = GroupFactory(name=f"{MARK}-group")
        member = UserFactory(email=f"{MARK}-member@acme.test")
        newcomer = UserFactory(email=f"{MARK}-newcomer@acme.test")
        membership = rbac_services.add_member(actor="tests", group=group, user=member)
        binding = rbac_services.grant_role(actor="tests", role=role, user=member)
        application = ApplicationFactory(slug=f"{MARK}-app", name=MARK)
        policy = ToolPolicyFactory(application=application, tool_name=f"{MARK}_tool")
        pin = ToolPin.objects.create(
            policy=ToolPolicyFactory(application=application, tool_name=f"{MARK}_pinned"),
            tool_name=f"{MARK}_pinned", source=ToolPin.Source.HOSTED,
            pinned_hash="a" * 64, pinned_definition={"name": f"{MARK}_pinned", "description": "v1"},
            pinned_at=timezone.now(),
            seen_hash="b" * 64, seen_definition={"name": f"{MARK}_pinned", "description": "v2"}, seen_at=timezone.now(),
        )  # fmt: skip
    ids = {
        "application": application.pk,
        "role": role.pk,
        "group": group.pk,
        "scope": scope.pk,
        "resource": resource.pk,
        "permission": permission.pk,
        "toolpolicy": policy.pk,
        "rolebinding": binding.pk,
        "groupmembership": membership.pk,
        "user": member.pk,
        "toolpin": pin.pk,
    }
    return {"ids": ids, "newcomer": newcomer.pk}


Payload = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    suffix: str  # of the URL name: "list", "detail", or a custom action's ("simulate", "effective-permissions")
    method: str
    permissions: tuple[str, ...]  # verbs ("view") or full names ("rbac.view_toolpolicy")
    expect: int = 200
    data: Payload | None = None


def _named(prefix: str, **extra: Any) -> tuple[Route, ...]:
    """The routes of a viewset of rows named by `name`: scopes, resources, roles, groups."""
    return (
        Route("list", "get", ("view",)),
        Route("detail", "get", ("view",)),
        Route("list", "post", ("add",), 201, lambda w: {"name": f"{MARK}-new-{prefix}"}),
        Route("detail", "put", ("change",), 200, lambda w: {"name": f"{MARK}-{prefix}", "description": "put"}),
        Route("detail", "patch", ("change",), 200, lambda w: {"description": "patched"}),
        Route("detail", "delete", ("delete",), 204),
    )


_READ = (Route("list", "get", ("view",)), Route("detail", "get", ("view",)))
_DELETE = Route("detail", "delete", ("delete",), 204)

# URL basename -> (model whose permissions guard it, its routes in the order they are checked)
VIEWSETS: dict[str, tuple[str, tuple[Route, ...]]] = {
    "scope": ("rbac.scope", _named("scope")),
    "resource": ("rbac.resource", _named("resource")),
    "role": ("rbac.role", _named("role")),
    "group": ("rbac.group", _named("group")),
    "permission": (
        "rbac.permission",
        (
            *_READ,
            Route("list", "post", ("add",), 201, lambda w: {"resource": f"{MARK}-resource", "action": "write"}),
            Route("detail", "put", ("change",), 200, lambda w: {"resource": f"{MARK}-resource", "action": "read"}),
            Route("detail", "patch", ("change",), 200, lambda w: {"description": "patched"}),
            _DELETE,
        ),
    ),
    "application": (
        "rbac.application",
        (
            *_READ,
            Route("list", "post", ("add",), 201, lambda w: {"slug": f"{MARK}-new", "name": "New"}),
            Route("detail", "put", ("change",), 200, lambda w: {"slug": f"{MARK}-app", "name": "Put"}),
            Route("detail", "patch", ("change",), 200, lambda w: {"name": "Patched"}),
            # Read-only: it needs the view permissions only, whatever the method.
            Route(
                "simulate",
                "post",
                ("view", "rbac.view_toolpolicy"),
                200,
                lambda w: {"roles": [f"{MARK}-role"]},
            ),
            _DELETE,
        ),
    ),
    "toolpolicy": (
        "rbac.toolpolicy",
        (
            *_READ,
            Route("list", "post", ("add",), 201, lambda w: {"application": f"{MARK}-app", "tool_name": f"{MARK}_new"}),
            Route(
                "detail", "put", ("change",), 200, lambda w: {"application": f"{MARK}-app", "tool_name": f"{MARK}_tool"}
            ),
            Route("detail", "patch", ("change",), 200, lambda w: {"is_enabled": False}),
            _DELETE,
        ),
    ),
    # Bindings and memberships are created and deleted, never changed.
    "rolebinding": (
        "rbac.rolebinding",
        (
            *_READ,
            Route("list", "post", ("add",), 201, lambda w: {"role": f"{MARK}-role", "group": f"{MARK}-group"}),
            _DELETE,
        ),
    ),
    "groupmembership": (
        "rbac.groupmembership",
        (
            *_READ,
            Route("list", "post", ("add",), 201, lambda w: {"group": f"{MARK}-group", "user": w["newcomer"]}),
            _DELETE,
        ),
    ),
    # Pins are read, reviewed (approve or reject the changed definition) and moved between deployments.
    "toolpin": (
        "rbac.toolpin",
        (
            *_READ,
            Route("export", "get", ("view",)),
            Route("mode", "get", ("view",)),
            Route("mode", "put", ("view", "change"), 200, lambda w: {"mode": "hold"}),
            Route("import-", "post", ("view", "change"), 200, lambda w: {"pins": []}),
            Route("approve", "post", ("view", "change"), 200, lambda w: {"expected_hash": "b" * 64}),
            # After the approval above nothing waits for review: past the permission check, a 400.
            Route("reject", "post", ("view", "change"), 400, lambda w: {"expected_hash": "b" * 64}),
        ),
    ),
    # Read-only here: accounts are managed in the dashboard.
    "user": (
        "accounts.user",
        (
            *_READ,
            Route("effective-permissions", "get", ("view", "rbac.view_application", "rbac.view_toolpolicy")),
        ),
    ),
}


LIST_ACTIONS = {"export", "mode", "import-"}  # custom actions on the collection (no row id in the URL)


def _url(tenant: Tenant, basename: str, suffix: str, pk: object) -> str:
    args = [] if suffix == "list" or suffix in LIST_ACTIONS else [pk]
    return tenant.url_prefix.rstrip("/") + reverse(f"api:{basename}-{suffix}", args=args, urlconf=settings.ROOT_URLCONF)


@pytest.mark.parametrize("basename", VIEWSETS)
def test_api_routes(basename: str, world: dict[str, Any], acme: Tenant, globex: Tenant) -> None:
    label, routes = VIEWSETS[basename]
    app_label, model = label.split(".")
    pk = world["ids"][basename]
    # Reversed together: each request clears Django's URL caches (django-tenants' subfolder routing).
    urls = {route.suffix: _url(acme, basename, route.suffix, pk) for route in routes}
    home = {suffix: _url(globex, basename, suffix, pk) for suffix in ("list", "detail")}
    matrix = ApiPermissionMatrix.of(acme, globex)
    for route in routes:
        permissions = [name if "." in name else f"{app_label}.{name}_{model}" for name in route.permissions]
        url = urls[route.suffix]
        data = route.data(world) if route.data else None
        response = matrix.check(route.method, url, permissions, data=data, expect=route.expect)
        if route.suffix == "list" and route.method == "get":
            assert MARK in response.content.decode(), f"{url} does not list the row"
            theirs = matrix.other_admin.get(home["list"])
            assert theirs.status_code == 200 and MARK not in theirs.content.decode(), "globex lists acme's row"
        if route.suffix == "detail" and route.method == "get":
            with schema_context(globex.schema_name):  # the id is not taken by a globex row by chance
                assert not apps.get_model(label).objects.filter(pk=pk).exists()
            assert matrix.other_admin.get(home["detail"]).status_code == 404


# --- the router: a viewset, an action or a method without a row above fails here -------------------------------


def _api_routes() -> set[tuple[str, str]]:
    """(URL name without the namespace, HTTP method) of every viewset route the API serves."""
    _prefix, api = get_resolver(settings.ROOT_URLCONF).namespace_dict["api"]
    routes = set()
    for pattern in api.url_patterns:
        callback = getattr(pattern, "callback", None)
        actions = getattr(callback, "actions", None)
        if not actions:  # not a viewset route (the API root, the schema and its docs)
            continue
        allowed = callback.cls.http_method_names  # type: ignore[union-attr]
        assert actions.get("head", actions.get("get")) == actions.get("get")  # HEAD is GET's row
        routes |= {(pattern.name, method) for method in actions if method in allowed and method != "head"}
    return routes


def test_every_api_route_has_a_matrix_row() -> None:
    covered = {(f"{basename}-{r.suffix}", r.method) for basename, (_label, rs) in VIEWSETS.items() for r in rs}
    assert _api_routes() == covered


def test_viewsets_guard_the_models_the_matrix_grants() -> None:
    """The permissions granted above are those of the model each viewset serves."""
    _prefix, api = get_resolver(settings.ROOT_URLCONF).namespace_dict["api"]
    served = {
        pattern.name.rsplit("-", 1)[0]: pattern.callback.cls.queryset.model._meta.label_lower
        for pattern in api.url_patterns
        if getattr(getattr(pattern, "callback", None), "actions", None) and pattern.name.endswith("-list")
    }
    assert served == {basename: label for basename, (label, _routes) in VIEWSETS.items()}
