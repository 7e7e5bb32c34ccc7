#!/usr/bin/env python3
"""RBAC benchmark (`make bench-rbac`): decision speed, filtering 1,000 tool policies, effective-grants fetch, and
the dashboard's user × tool matrix page for 1,000 users × 100 tools.

Runs against real Postgres and Redis in tenant `bench` (created on first run; data is created idempotently,
so later runs reuse it). It prints each figure next to its target with PASS/MISS. It is a measurement, not
a test: it never fails on a MISS and exits 0.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_tenants.utils import schema_context, tenant_context  # noqa: E402

from accounts.models import User  # noqa: E402
from rbac import application_pages, services  # noqa: E402
from rbac import grants as grants_module  # noqa: E402
from rbac import matrix as matrix_module  # noqa: E402
from rbac.engine import KINDS, Grants, Requirement, decide, filter_tools  # noqa: E402
from rbac.models import (  # noqa: E402
    Application,
    Group,
    GroupMembership,
    Permission,
    Resource,
    Role,
    RoleBinding,
    Scope,
    ToolPolicy,
)
from tenants.models import Tenant  # noqa: E402
from tenants.services import create_tenant, ensure_public_tenant  # noqa: E402

ACTOR = "bench"
USER_EMAIL = "bench-user@bench.test"
N_SCOPES, N_RESOURCES, ACTIONS = 20, 40, ("read", "write", "deploy")
N_ROLES = 60  # role-00 … role-59 exist; the user holds role-00 … role-49
N_DIRECT_ROLES, N_GROUPS, ROLES_PER_GROUP = 35, 5, 3  # 35 direct + 5 groups × 3 roles = 50 roles
N_TOOLS = 1_000

# Targets from the issue.
TARGET_DECISION_US = 10.0
TARGET_FILTER_MS = 5.0
TARGET_COLD_QUERIES = 3
TARGET_MATRIX_PAGE_MS = 1_000.0  # issue 25: a page of the 1,000 users × 100 tools matrix in ≤ 1 s server time

N_MATRIX_USERS, N_MATRIX_TOOLS = 1_000, 100


# --- Data set-up (idempotent) -----------------------------------------------------------------------------------


def ensure_tenant() -> Tenant:
    ensure_public_tenant()
    tenant = Tenant.objects.filter(slug="bench").first()
    if tenant is None:
        tenant = create_tenant(actor=ACTOR, slug="bench", name="Benchmark", admin_email="admin@bench.test").tenant
    return tenant


def _role_grants(index: int) -> tuple[list[str], list[str], list[str]]:
    """Deterministic scopes, resources and permissions of role `index` (2, 3 and 4 of them)."""
    scopes = [f"scope-{(index + k) % N_SCOPES:02d}" for k in (0, 7)]
    resources = [f"res-{(index * 3 + k) % N_RESOURCES:02d}" for k in (0, 1, 2)]
    permissions = [f"res-{(index * 5 + k) % N_RESOURCES:02d}:{ACTIONS[(index + k) % len(ACTIONS)]}" for k in range(4)]
    return scopes, resources, permissions


@transaction.atomic
def ensure_data() -> tuple[User, Application]:
    scopes = {s.name: s for s in (Scope.objects.get_or_create(name=f"scope-{i:02d}")[0] for i in range(N_SCOPES))}
    resources = {
        r.name: r for r in (Resource.objects.get_or_create(name=f"res-{i:02d}")[0] for i in range(N_RESOURCES))
    }
    permissions = {
        f"{name}:{action}": Permission.objects.get_or_create(resource=resource, action=action)[0]
        for name, resource in resources.items()
        for action in ACTIONS
    }
    roles: list[Role] = []
    for i in range(N_ROLES):
        role, created = Role.objects.get_or_create(name=f"role-{i:02d}")
        if created:
            role_scopes, role_resources, role_permissions = _role_grants(i)
            role.scopes.set([scopes[name] for name in role_scopes])
            role.resources.set([resources[name] for name in role_resources])
            role.permissions.set([permissions[name] for name in role_permissions])
        roles.append(role)

    user = User.objects.filter(email=USER_EMAIL).first() or User.objects.create_user(USER_EMAIL, None)
    for role in roles[:N_DIRECT_ROLES]:
        services.grant_role.nested(actor=ACTOR, role=role, user=user)
    for g in range(N_GROUPS):
        group, _ = Group.objects.get_or_create(name=f"group-{g}")
        services.add_member.nested(actor=ACTOR, group=group, user=user)
        first = N_DIRECT_ROLES + g * ROLES_PER_GROUP
        for role in roles[first : first + ROLES_PER_GROUP]:
            services.grant_role.nested(actor=ACTOR, role=role, group=group)

    application, _ = Application.objects.get_or_create(slug="bench", defaults={"name": "Benchmark tools"})
    if ToolPolicy.objects.filter(application=application).count() < N_TOOLS:
        # Bulk insert: tool policies do not affect grants, and 1,000 audited upserts would only slow set-up.
        ToolPolicy.objects.bulk_create(
            [ToolPolicy(application=application, **spec) for spec in policy_specs()], ignore_conflicts=True
        )
    return user, application


def policy_specs() -> list[dict[str, Any]]:
    """1,000 varied requirements: open, any-of each kind, require_all mixes, disabled, and never-satisfied ones.

    Names are drawn from pools wider than what exists (role-60 … role-79, scope-20 … scope-29 and so on),
    so each kind of requirement sometimes matches and sometimes does not."""
    rng = random.Random(20250101)  # reproducible data, not security

    def pick(prefix: str, pool: int, k: int) -> list[str]:
        return sorted({f"{prefix}-{rng.randrange(pool):02d}" for _ in range(k)})

    def perms(k: int) -> list[str]:
        return sorted({f"res-{rng.randrange(50):02d}:{rng.choice(ACTIONS)}" for _ in range(k)})

    specs: list[dict[str, Any]] = []
    for i in range(N_TOOLS):
        shape = i % 10
        spec: dict[str, Any] = {"tool_name": f"tool_{i:04d}"}
        if shape == 1:
            spec["roles"] = pick("role", 80, 3)
        elif shape == 2:
            spec["scopes"] = pick("scope", 30, 2)
        elif shape == 3:
            spec["resources"] = pick("res", 50, 2)
        elif shape == 4:
            spec["permissions"] = perms(3)
        elif shape == 5:
            spec["groups"] = [f"group-{rng.randrange(8)}"]
            spec["roles"] = pick("role", 80, 2)
        elif shape == 6:
            spec |= {"roles": pick("role", 80, 4), "scopes": pick("scope", 30, 3), "resources": pick("res", 50, 2)}
            spec["require_all"] = True
        elif shape == 7:
            spec |= {"groups": [f"group-{rng.randrange(8)}"], "permissions": perms(4), "require_all": True}
        elif shape == 8:
            spec |= {"roles": pick("role", 80, 2), "is_enabled": False}
        elif shape == 9:
            spec["roles"] = [f"role-{rng.randrange(50, 80):02d}", "Role-00"]  # unheld, and a case mismatch
        specs.append(spec)  # shape 0: open
    return specs


# --- Measurement helpers -------------------------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def per_call_us(func: Callable[[], object], calls: int, repeats: int) -> list[float]:
    """µs per call of `func`, for each of `repeats` timed loops of `calls` calls."""
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return results


class CountingCache:
    """Wraps the Django cache to count Redis round trips of the warm path (timing is measured without it)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


ROWS: list[tuple[str, str, str, str, str]] = []


def report(label: str, value: float, unit: str, target: float | None, fmt: str = ".2f") -> None:
    if target is None:
        ROWS.append((label, f"{value:{fmt}} {unit}", "—", "—", "info"))
        return
    ratio = value / target if target else (0.0 if value == 0 else float("inf"))
    ROWS.append(
        (label, f"{value:{fmt}} {unit}", f"≤ {target:g} {unit}", f"{ratio:.2f}", "PASS" if ratio <= 1 else "MISS")
    )


def print_rows() -> None:
    headers = ("figure", "value", "target", "ratio", "result")
    widths = [max(len(row[i]) for row in [headers, *ROWS]) for i in range(len(headers))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers).rstrip())
    print(line.format(*("-" * w for w in widths)))
    for row in sorted(ROWS, key=lambda row: row[0][:3]):  # (a), (b), (c); measured in another order
        print(line.format(*row).rstrip())


# --- Benchmarks ----------------------------------------------------------------------------------------------------


def bench_decide(grants: Grants) -> None:
    # Realistic: the seed's deploy_production shape (require_all, one role, one scope, every resource).
    requirement = Requirement.of(
        roles=["role-48", "role-70"], scopes=["scope-01"], resources=["res-03", "res-04"], require_all=True
    )
    any_requirement = Requirement.of(roles=["role-70", "role-71"], scopes=["scope-29", "scope-05"])
    print(f"(a) decide: require_all requirement → {decide(grants, requirement).reason}")
    print(f"    decide: any-of requirement     → {decide(grants, any_requirement).reason}")
    calls, repeats = 200_000, 7
    per_call_us(lambda: decide(grants, requirement), 20_000, 1)  # warm-up
    us = statistics.median(per_call_us(lambda: decide(grants, requirement), calls, repeats))
    report("(a) warm decide, require_all (µs/decision)", us, "µs", TARGET_DECISION_US, ".3f")
    report("(a) warm decide, require_all (decisions/s)", 1e6 / us, "/s", None, ",.0f")
    us_any = statistics.median(per_call_us(lambda: decide(grants, any_requirement), calls, repeats))
    report("(a) warm decide, any-of (µs/decision)", us_any, "µs", TARGET_DECISION_US, ".3f")
    report("(a) warm decide, any-of (decisions/s)", 1e6 / us_any, "/s", None, ",.0f")


def bench_filter(grants: Grants, application: Application) -> None:
    policies = {p.tool_name: p.requirement() for p in ToolPolicy.objects.filter(application=application)}
    tools = sorted(policies)
    allowed = filter_tools(grants, policies, tools)
    print(f"(b) filter_tools: {len(tools)} tools with a policy, {len(allowed)} allowed for the 50-role user")
    for _ in range(20):  # warm-up
        filter_tools(grants, policies, tools)
    samples = []
    for _ in range(300):
        start = time.perf_counter()
        filter_tools(grants, policies, tools)
        samples.append((time.perf_counter() - start) * 1e3)
    report("(b) filter 1,000 tools, median (ms)", statistics.median(samples), "ms", TARGET_FILTER_MS, ".3f")
    report("(b) filter 1,000 tools, p95 (ms)", percentile(samples, 95), "ms", TARGET_FILTER_MS, ".3f")


def bench_fetch(user: User) -> Grants:
    grants_module.load_grants(user.pk)  # builds the SQL text once, opens the connection
    queries, times = [], []
    for _ in range(50):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            grants = grants_module.load_grants(user.pk)
            times.append((time.perf_counter() - start) * 1e3)
        queries.append(len(ctx.captured_queries))
    counts = ", ".join(f"{kind} {len(getattr(grants, kind))}" for kind in KINDS)
    print(f"(c) effective grants of {USER_EMAIL}: {counts}")
    print("    SQL of one cold fetch:")
    for query in ctx.captured_queries:
        print(f"      {' '.join(query['sql'].split())[:100]}")
    report("(c) cold fetch load_grants (SQL queries)", max(queries), "queries", TARGET_COLD_QUERIES, "d")
    report("(c) cold fetch load_grants, median (ms)", statistics.median(times), "ms", None, ".3f")
    report("(c) cold fetch load_grants, p95 (ms)", percentile(times, 95), "ms", None, ".3f")

    # The cache-miss path a request really takes after an RBAC change: new version token, then one query.
    grants_module.bump_version()
    grants_module.clear_local_cache()
    with CaptureQueriesContext(connection) as ctx:
        start = time.perf_counter()
        grants_module.grants_for_user_id(user.pk)
        miss_ms = (time.perf_counter() - start) * 1e3
    report("(c) grants_for_user_id after a bump (SQL queries)", len(ctx.captured_queries), "queries", None, "d")
    report("(c) grants_for_user_id after a bump (ms)", miss_ms, "ms", None, ".3f")

    # Warm: both caches filled; timed without instrumentation, then counted with it.
    grants_module.grants_for_user_id(user.pk)
    us = statistics.median(per_call_us(lambda: grants_module.grants_for_user_id(user.pk), 2_000, 5))
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(1_000):
            grants_module.grants_for_user_id(user.pk)
    real_cache = grants_module.cache
    counting = CountingCache(real_cache)
    grants_module.cache = counting  # type: ignore[assignment]
    try:
        for _ in range(1_000):
            grants_module.grants_for_user_id(user.pk)
    finally:
        grants_module.cache = real_cache
    report("(c) warm fetch grants_for_user_id (µs)", us, "µs", None, ".1f")
    report("(c) warm fetch grants_for_user_id (SQL queries)", len(ctx.captured_queries) / 1_000, "queries", 0, ".0f")
    report("(c) warm fetch grants_for_user_id (Redis calls)", counting.calls / 1_000, "calls", None, ".1f")
    return grants


@transaction.atomic
def ensure_matrix_data() -> Application:
    """1,000 users (3 direct roles and one group each) and an application with 100 of the varied policies.

    Bulk inserts, like the tool policies above: the matrix reads grants in bulk, uncached, so no version bump
    is needed, and 4,000 audited service calls would only slow set-up."""
    roles = list(Role.objects.order_by("name"))
    groups = list(Group.objects.order_by("name"))
    emails = [f"matrix-{i:04d}@bench.test" for i in range(N_MATRIX_USERS)]
    existing = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
    User.objects.bulk_create(
        [User(email=email, is_active=i % 50 != 49) for i, email in enumerate(emails) if email not in existing]
    )
    people = list(User.objects.filter(email__in=emails).order_by("email"))
    RoleBinding.objects.bulk_create(
        [
            RoleBinding(user=person, role=roles[(i * 7 + k * 11) % len(roles)])
            for i, person in enumerate(people)
            for k in range(3)
        ],
        ignore_conflicts=True,
    )
    GroupMembership.objects.bulk_create(
        [GroupMembership(user=person, group=groups[i % len(groups)]) for i, person in enumerate(people)],
        ignore_conflicts=True,
    )
    application, _ = Application.objects.get_or_create(slug="bench-matrix", defaults={"name": "Matrix benchmark"})
    if ToolPolicy.objects.filter(application=application).count() < N_MATRIX_TOOLS:
        ToolPolicy.objects.bulk_create(
            [ToolPolicy(application=application, **spec) for spec in policy_specs()[:N_MATRIX_TOOLS]],
            ignore_conflicts=True,
        )
    return application


def bench_matrix(tenant: Tenant) -> None:
    """(d) The user × tool matrix page (rbac.application_pages.tool_matrix), rendered by its view for the tenant's
    admin: server time of one page (50 users × 100 tools), and of the CSV of all 1,000 users."""
    with tenant_context(tenant):
        application = ensure_matrix_data()
        admin_user = User.objects.filter(is_superuser=True).order_by("pk").first()
        users, tools = User.objects.count(), ToolPolicy.objects.filter(application=application).count()
        factory = RequestFactory()

        def render(view: Callable[..., Any], query: str = "") -> tuple[float, int, int]:
            request = factory.get(f"/t/{tenant.slug}/admin/rbac/application/{application.pk}/matrix/{query}")
            request.user = admin_user
            request.tenant = tenant  # type: ignore[attr-defined]
            with CaptureQueriesContext(connection) as ctx:
                start = time.perf_counter()
                response = view(request, application.pk)
                elapsed = (time.perf_counter() - start) * 1e3
            assert response.status_code == 200, response.status_code
            return elapsed, len(ctx.captured_queries), len(response.content)

        render(application_pages.tool_matrix)  # warm-up: templates compiled, connection open
        pages = [render(application_pages.tool_matrix, f"?page={number}") for number in (1, 7, 13, 20, 1, 7, 13, 20)]
        csv_ms, csv_queries, csv_bytes = render(application_pages.tool_matrix_csv)
    print(
        f"(d) matrix of {application.slug}: {users} users × {tools} tools, {matrix_module.PER_PAGE} users a page; "
        f"{pages[0][1]} SQL queries a page; CSV {csv_bytes / 1024:.0f} KiB in {csv_queries} queries"
    )
    times = [elapsed for elapsed, _, _ in pages]
    report(
        "(d) matrix page 1,000 users × 100 tools, median (ms)",
        statistics.median(times),
        "ms",
        TARGET_MATRIX_PAGE_MS,
        ".1f",
    )
    report("(d) matrix page 1,000 users × 100 tools, max (ms)", max(times), "ms", TARGET_MATRIX_PAGE_MS, ".1f")
    report("(d) matrix CSV, all 1,000 users (ms)", csv_ms, "ms", None, ".1f")


def main() -> int:
    tenant = ensure_tenant()
    with schema_context(tenant.schema_name):
        start = time.perf_counter()
        user, application = ensure_data()
        setup_s = time.perf_counter() - start
        print(f"RBAC benchmark — tenant {tenant.slug} (schema {tenant.schema_name}); data set-up {setup_s:.1f} s")
        print(
            f"Python {platform.python_version()} on {platform.machine()}; DEBUG={settings.DEBUG}; "
            f"database {connection.settings_dict['NAME']}"
        )
        grants = bench_fetch(user)
        bench_decide(grants)
        bench_filter(grants, application)
    bench_matrix(tenant)
    print()
    print_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
