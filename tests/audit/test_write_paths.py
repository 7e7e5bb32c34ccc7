"""One write path: each catalogued event is written by exactly one function, the dashboard and the management
API write through the same service functions, and the same edit through either door leaves the same events.

The first tests read the source (a string constant naming a catalogued kind marks the function that writes
it); the last ones drive the real dashboard pages and API endpoints and compare what they recorded.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from audit.catalog import EVENT_KINDS
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import ApplicationFactory, GroupFactory, ResourceFactory, RoleFactory, ScopeFactory, UserFactory
from tests.support.admin_form import AdminForm

ROOT = Path(__file__).resolve().parents[2]
APPS = sorted(
    path.parent.name
    for path in ROOT.glob("*/apps.py")
    if path.parent.name not in ("tests", "bench", "scripts", "docs", "templates")
) + ["authsec_site"]
KINDS = {kind for kind in EVENT_KINDS if "<" not in kind}
# Modules that are doors (the dashboard, the management API): they call service functions and never name
# an event themselves.
DOOR_MODULES = ("admin", "resource_server_admin", "pin_admin")
# Public functions of services modules that are not one transaction, by design, with the reason.
MULTI_STEP = {
    "workloads.services:issue_svid": "writes the SVID files outside the database, and commits a failure on its own "
    "so that the failure is recorded while the error is raised",
}


@dataclass(frozen=True)
class Writer:
    module: str
    function: str  # dotted qualname inside the module, "<module>" at top level
    is_service: bool  # decorated with audit.writes.service


def _is_service(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any(isinstance(d, ast.Name) and d.id == "service" for d in decorators) or any(
        isinstance(d, ast.Attribute) and d.attr == "service" for d in decorators
    )


def writers() -> dict[str, set[Writer]]:
    """Every catalogued kind -> the functions whose body holds its name as a string constant."""
    found: dict[str, set[Writer]] = {kind: set() for kind in KINDS}

    class Visitor(ast.NodeVisitor):
        def __init__(self, module: str) -> None:
            self.module = module
            self.stack: list[ast.AST] = []

        def _scope(self, node: ast.AST) -> None:
            self.stack.append(node)
            self.generic_visit(node)
            self.stack.pop()

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope  # noqa: N815

        def visit_Constant(self, node: ast.Constant) -> None:
            # Only inside a function: a table of kinds at module level (a mapping to SIEM classes) writes none.
            functions = [n for n in self.stack if not isinstance(n, ast.ClassDef)]
            if isinstance(node.value, str) and node.value in KINDS and functions:
                name = ".".join(getattr(n, "name", "?") for n in self.stack)
                found[node.value].add(Writer(self.module, name, _is_service(functions[-1])))

    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts or path.relative_to(ROOT).as_posix() == "audit/catalog.py":
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            Visitor(module).visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def test_each_catalogued_event_is_written_by_exactly_one_function() -> None:
    found = writers()
    problems = {kind: sorted(f"{w.module}:{w.function}" for w in where) for kind, where in found.items()}
    assert {kind: where for kind, where in problems.items() if len(where) != 1} == {}


def test_service_functions_write_the_changes_and_the_doors_write_none() -> None:
    """An event named in a `services` module is written by an `audit.writes.service` function (its own
    durable transaction), and no dashboard or API module names an event: they call the services."""
    found = writers()
    in_services = {
        f"{kind} in {w.module}:{w.function}"
        for kind, where in found.items()
        for w in where
        if w.module.split(".")[-1] == "services"
        and not w.is_service
        and not w.function.startswith("_")
        and f"{w.module}:{w.function}" not in MULTI_STEP
    }
    assert in_services == set()
    in_doors = {
        f"{kind} in {w.module}:{w.function}"
        for kind, where in found.items()
        for w in where
        if w.module.split(".")[-1] in DOOR_MODULES or w.module.startswith("api.")
    }
    assert in_doors == set()


def test_the_source_scan_finds_a_writer_it_is_shown() -> None:
    """The scan is not vacuous: the writers it reports for known kinds are the ones in the code."""
    found = writers()
    assert {f"{w.module}:{w.function}" for w in found["rbac.role_granted"]} == {"rbac.services:grant_role"}
    assert all(w.is_service for w in found["rbac.scope_changed"])


# --- the same edit through the dashboard and the API ------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kind of RBAC object, written through both doors with the same values."""

    admin: str  # /t/acme/admin/<admin>/
    api: str  # /t/acme/api/<api>/
    dashboard: Callable[[dict[str, Any]], dict[str, list[str]]]  # fill the add/change form (AdminForm values)
    body: Callable[[dict[str, Any]], dict[str, Any]]  # the API body
    change: dict[str, Any] | None  # a field changed afterwards (None: rows that are never changed)


def _ids(objects: dict[str, Any], *names: str) -> list[str]:
    return [str(objects[name].pk) for name in names]


CASES: dict[str, Case] = {
    "scope": Case(
        "rbac/scope",
        "scopes",
        lambda o: {"name": ["parity"], "description": ["d1"]},
        lambda o: {"name": "parity", "description": "d1"},
        {"description": "d2"},
    ),
    "resource": Case(
        "rbac/resource",
        "resources",
        lambda o: {"name": ["parity"], "description": ["d1"]},
        lambda o: {"name": "parity", "description": "d1"},
        {"description": "d2"},
    ),
    "permission": Case(
        "rbac/permission",
        "permissions",
        lambda o: {"resource": _ids(o, "resource"), "action": ["parity"], "description": ["d1"]},
        lambda o: {"resource": o["resource"].name, "action": "parity", "description": "d1"},
        {"description": "d2"},
    ),
    "role": Case(
        "rbac/role",
        "roles",
        lambda o: {"name": ["parity"], "description": ["d1"], "scopes": _ids(o, "scope")},
        lambda o: {"name": "parity", "description": "d1", "scopes": [o["scope"].name]},
        {"description": "d2"},
    ),
    "group": Case(
        "rbac/group",
        "groups",
        lambda o: {"name": ["parity"], "description": ["d1"]},
        lambda o: {"name": "parity", "description": "d1"},
        {"description": "d2"},
    ),
    "application": Case(
        "rbac/application",
        "applications",
        lambda o: {"slug": ["parity"], "name": ["Parity"], "description": ["d1"], "is_active": ["on"]},
        lambda o: {"slug": "parity", "name": "Parity", "description": "d1", "is_active": True},
        {"description": "d2"},
    ),
    "toolpolicy": Case(
        "rbac/toolpolicy",
        "tool-policies",
        lambda o: {
            "application": _ids(o, "application"),
            "tool_name": ["parity_tool"],
            "description": ["d1"],
            "roles": [o["role"].name],
            "is_enabled": ["on"],
        },
        lambda o: {
            "application": o["application"].slug,
            "tool_name": "parity_tool",
            "description": "d1",
            "roles": [o["role"].name],
            "is_enabled": True,
        },
        {"description": "d2"},
    ),
    "rolebinding": Case(
        "rbac/rolebinding",
        "role-bindings",
        lambda o: {"role": _ids(o, "role"), "user": _ids(o, "user"), "group": [""]},
        lambda o: {"role": o["role"].name, "user": o["user"].pk},
        None,
    ),
    "groupmembership": Case(
        "rbac/groupmembership",
        "group-memberships",
        lambda o: {"group": _ids(o, "group"), "user": _ids(o, "user")},
        lambda o: {"group": o["group"].name, "user": o["user"].pk},
        None,
    ),
}


def _events_after(tenant: Tenant, seq: int) -> list[AuditEvent]:
    with schema_context(tenant.schema_name):
        return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def _last_seq(tenant: Tenant) -> int:
    with schema_context(tenant.schema_name):
        last = AuditEvent.objects.order_by("-seq").first()
        return last.seq if last else 0


VOLATILE = {"id", "sdk_client_id"}  # differ between two rows made with the same values (a random client id)


def _comparable(event: AuditEvent) -> tuple[Any, ...]:
    """What must be equal whichever door: action, outcome, actor, target type and label, and the data with
    row ids left out (the two doors make two rows)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return (event.action, event.outcome, event.actor_label, event.target_type, event.target_label, strip(event.data))


def _through_dashboard(admin: Client, tenant: Tenant, case: Case, objects: dict[str, Any]) -> list[list[tuple]]:
    base = f"/t/acme/admin/{case.admin}/"
    steps: list[list[tuple]] = []
    seq = _last_seq(tenant)
    form = AdminForm(admin.get(f"{base}add/").content.decode())
    form.values.update(case.dashboard(objects))
    response = admin.post(f"{base}add/", form.data())
    assert response.status_code == 302, response.content.decode()[:2000]
    events = _events_after(tenant, seq)
    steps.append([_comparable(e) for e in events])
    pk = next(e.target_id for e in events if e.target_type.endswith(case.admin.split("/")[1]))
    if case.change is not None:
        seq = _last_seq(tenant)
        form = AdminForm(admin.get(f"{base}{pk}/change/").content.decode())
        for field, value in case.change.items():
            form.set(field, value)
        assert admin.post(f"{base}{pk}/change/", form.data()).status_code == 302
        steps.append([_comparable(e) for e in _events_after(tenant, seq)])
    seq = _last_seq(tenant)
    assert admin.post(f"{base}{pk}/delete/", {"post": "yes"}).status_code == 302
    steps.append([_comparable(e) for e in _events_after(tenant, seq)])
    return steps


def _through_api(admin: Client, tenant: Tenant, case: Case, objects: dict[str, Any]) -> list[list[tuple]]:
    base = f"/t/acme/api/{case.api}/"
    steps: list[list[tuple]] = []
    seq = _last_seq(tenant)
    response = admin.post(base, case.body(objects), content_type="application/json")
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    steps.append([_comparable(e) for e in _events_after(tenant, seq)])
    if case.change is not None:
        seq = _last_seq(tenant)
        assert admin.patch(f"{base}{pk}/", case.change, content_type="application/json").status_code == 200
        steps.append([_comparable(e) for e in _events_after(tenant, seq)])
    seq = _last_seq(tenant)
    assert admin.delete(f"{base}{pk}/").status_code == 204
    steps.append([_comparable(e) for e in _events_after(tenant, seq)])
    return steps


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_dashboard_edit_and_the_same_api_edit_write_the_same_events(name: str, acme: Tenant, admin: Client) -> None:
    case = CASES[name]
    with schema_context(acme.schema_name):
        objects = {
            "resource": ResourceFactory(name="parity-res"),
            "scope": ScopeFactory(name="parity-scope"),
            "role": RoleFactory(name="parity-role"),
            "group": GroupFactory(name="parity-group"),
            "user": UserFactory(email="parity@acme.test"),
            "application": ApplicationFactory(slug="parity-app", name="Parity app"),
        }
    dashboard = _through_dashboard(admin, acme, case, objects)
    api = _through_api(admin, acme, case, objects)
    assert all(len(step) == 1 for step in dashboard), dashboard  # one event per change
    assert dashboard == api
