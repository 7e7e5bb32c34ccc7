#!/usr/bin/env python3
"""Audit log benchmark (`make bench-audit`): 1,000,000 chained events, filtered review pages, exports, record().

Runs against real Postgres in tenant `auditbench` (created on first run). The events are loaded once with
COPY in batches (each batch under the chain lock, its hashes computed in Python exactly as `record()` does,
so the chain verifies); later runs reuse them. Figures are printed next to their targets with PASS/MISS.
It is a measurement, not a test: it never fails on a MISS and exits 0. Timings run with DEBUG off.
"""

from __future__ import annotations

import datetime as dt
import json
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
# Production-like timings: no query log, cached templates. (devstack exec sets every required service variable.)
os.environ["DEBUG"] = "0"
os.environ.setdefault("AUTHSEC_PUBLIC_URL", "http://127.0.0.1:8000")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

import audit  # noqa: E402
from accounts.models import User  # noqa: E402
from audit import chain, queries  # noqa: E402
from audit.filters import Cursor  # noqa: E402
from audit.models import AuditEvent  # noqa: E402
from audit.verify import verify_chain  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import create_tenant, ensure_public_tenant  # noqa: E402

SLUG, ADMIN = "auditbench", "admin@auditbench.test"
N_EVENTS = int(os.environ.get("AUDIT_BENCH_EVENTS", "1000000"))
N_USERS, N_TOOLS, APPS, DAYS = 500, 40, ("demo", "ops", "data"), 180
BATCH = 50_000
TARGET_PAGE_MS, TARGET_RECORD_MS = 300.0, 1.0
COLUMNS = (
    "seq", "prev_hash", "hash", "created_at", "actor_type", "actor_id", "actor_label", "action", "outcome",
    "target_type", "target_id", "target_label", "data", "request_id", "ip", "user_agent",
)  # fmt: skip


# --- Data set-up (idempotent) ---------------------------------------------------------------------------------------


def ensure_tenant() -> Tenant:
    ensure_public_tenant()
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant = create_tenant(actor="bench", slug=SLUG, name="Audit benchmark", admin_email=ADMIN).tenant
    return tenant


def synthetic_event(rng: random.Random, n: int) -> dict[str, Any]:
    """One plausible event: mostly tool-call decisions, then logins, dashboard and RBAC changes."""
    user = rng.randrange(N_USERS)
    email = f"user{user:04d}@{SLUG}.test"
    event: dict[str, Any] = {
        "actor_type": "user", "actor_id": str(1000 + user), "actor_label": email, "target_type": "",
        "target_id": "", "target_label": "", "request_id": f"req{n:012d}", "ip": f"10.{user % 250}.{n % 250}.7",
        "user_agent": "bench/1.0", "outcome": "success",
    }  # fmt: skip
    kind = rng.random()
    if kind < 0.55:
        tool = f"tool_{rng.randrange(N_TOOLS):02d}"
        deny = rng.random() < 0.3
        reason = f"needs role role-{rng.randrange(20):02d}" if deny else "requirement met"
        data = {"application": APPS[rng.randrange(3)], "tool": tool, "reason": reason}
        event.update(action="mcp.tool_call", outcome="deny" if deny else "allow", data=data)
    elif kind < 0.70:
        event.update(action="auth.login_succeeded", target_label=email, data={"via": "/t/auditbench/admin/login/"})
    elif kind < 0.75:
        event.update(
            actor_type="anonymous", actor_id="", action="auth.login_failed", outcome="failure", data={"email": email}
        )
    elif kind < 0.85:
        field = rng.choice(("description", "name", "is_active"))
        data = {"model": "rbac.role", "changes": {field: {"before": "a", "after": "b"}}}
        event.update(action="rbac.role_changed", target_type="rbac.role", target_label=f"role-{n % 60}", data=data)
    elif kind < 0.95:
        role = f"role-{rng.randrange(60):02d}"
        event.update(action="rbac.role_granted", target_label=f"{role} → {email}", data={"role": role, "user": email})
    else:
        data = {"before": None, "after": {"name": f"scope-{n}"}}
        event.update(action="rbac.scope_created", target_type="rbac.scope", target_label=f"scope-{n}", data=data)
    return event


def load_events(target: int) -> tuple[int, float]:
    """COPY synthetic events until the tenant holds `target`; returns (rows added, seconds)."""
    have = AuditEvent.objects.count()
    if have >= target:
        return 0, 0.0
    rng = random.Random(20261122 + have)  # reproducible data, not security
    start, added = time.perf_counter(), 0
    origin = dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS)
    spacing = dt.timedelta(days=DAYS) / target
    sql = f"COPY audit_auditevent ({', '.join(COLUMNS)}) FROM STDIN"
    while have + added < target:
        size = min(BATCH, target - have - added)
        with transaction.atomic():
            chain.lock()  # exactly like record(): nobody else appends meanwhile
            head = chain.head()
            seq, prev = head.seq, head.hash
            # The few set-up events (tenant.created, …) are newer than the synthetic history that follows them
            # in the chain; from then on time order is chain order, as record() keeps it.
            last_time = head.created_at if have + added > 100 and head.created_at else origin
            with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
                for _ in range(size):
                    seq += 1
                    fields = synthetic_event(rng, seq)
                    last_time = max(last_time, origin + spacing * seq)
                    fields.update(seq=seq, prev_hash=prev, created_at=last_time)
                    prev = fields["hash"] = chain.compute_hash(fields)
                    copy.write_row([json.dumps(fields[c]) if c == "data" else fields[c] for c in COLUMNS])
        added += size
        print(f"    loaded {have + added:,} events ({time.perf_counter() - start:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) audit_auditevent")
    return added, time.perf_counter() - start


# --- Measurement helpers --------------------------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


ROWS: list[tuple[str, str, str, str, str]] = []


def report(label: str, value: float, unit: str, target: float | None, fmt: str = ".1f") -> None:
    if target is None:
        ROWS.append((label, f"{value:{fmt}} {unit}", "—", "—", "info"))
        return
    ratio = value / target
    ROWS.append(
        (label, f"{value:{fmt}} {unit}", f"≤ {target:g} {unit}", f"{ratio:.2f}", "PASS" if ratio <= 1 else "MISS")
    )


def print_rows() -> None:
    headers = ("figure", "value", "target", "ratio", "result")
    widths = [max(len(row[i]) for row in [headers, *ROWS]) for i in range(len(headers))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers).rstrip())
    print(line.format(*("-" * w for w in widths)))
    for row in ROWS:
        print(line.format(*row).rstrip())


def timed_ms(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1e3


# --- Benchmarks -----------------------------------------------------------------------------------------------------


def page_scenarios(newest: dt.datetime) -> dict[str, dict[str, str]]:
    """Filtered list pages as reviewers open them (the values exist in the synthetic data)."""
    day = dt.timedelta(days=1)
    iso = "%Y-%m-%dT%H:%M:%S"
    return {
        "no filter (newest page)": {},
        "outcome=deny": {"outcome": "deny"},
        "actor": {"actor": f"user0042@{SLUG}.test"},
        "actor + denied": {"actor": f"user0042@{SLUG}.test", "outcome": "deny"},
        "category=rbac": {"category": "rbac"},
        "application + tool": {"application": "ops", "tool": "tool_07"},
        "tool + denied": {"tool": "tool_13", "outcome": "deny"},
        "7 days, 60 days ago": {"start": (newest - 67 * day).strftime(iso), "end": (newest - 60 * day).strftime(iso)},
        "1 day + category=auth": {"start": (newest - 31 * day).strftime(iso), "end": (newest - 30 * day).strftime(iso),
                                  "category": "auth"},  # fmt: skip
        "text 'role-07' (last 7 days)": {"q": "role-07"},
        "text, rare (last 7 days)": {"q": f"req{999_000:012d}"},
        "text, none (last 7 days)": {"q": "no-such-text"},
        "actor + denied, 2 days": {"actor": f"user0042@{SLUG}.test", "outcome": "deny",
                                   "start": (newest - 2 * day).strftime(iso)},  # fmt: skip
    }  # fmt: skip


def bench_pages(client: Client, newest: dt.datetime, runs: int) -> None:
    """Whole list pages through the middleware (query, chart, top denied tools, template), then deep pages."""
    everything: list[float] = []
    print("(a) filtered list page (whole request), per scenario: median / p95 ms, events on the page")
    for name, params in page_scenarios(newest).items():
        client.get(f"/t/{SLUG}/audit/", params)  # warm
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            response = client.get(f"/t/{SLUG}/audit/", params)
            samples.append((time.perf_counter() - start) * 1e3)
        assert response.status_code == 200, response.status_code
        everything += samples
        shown = response.content.count(b"data-event-id=")
        print(f"    {name:<26} {statistics.median(samples):7.1f} / {percentile(samples, 95):7.1f}   {shown}")
    report("(a) filtered list page, p95 over all scenarios", percentile(everything, 95), "ms", TARGET_PAGE_MS)
    report("(a) filtered list page, median", statistics.median(everything), "ms", None)

    # Keyset pages: page 1 and page 40 of a filter cost the same.
    filters = {"outcome": "deny"}
    cursor: Cursor | None = None
    deep: list[float] = []
    for _page in range(40):
        start = time.perf_counter()
        result = queries.event_page(filters, before=cursor)
        deep.append((time.perf_counter() - start) * 1e3)
        cursor = result.older
    print(f"    keyset list query, outcome=deny: page 1 {deep[0]:.2f} ms, page 40 {deep[-1]:.2f} ms")
    report("(a) list query alone, page 40 of outcome=deny", deep[-1], "ms", None, ".2f")


def bench_exports() -> None:
    """Stream exports (the same generators the view uses), counting rows and bytes."""
    newest = AuditEvent.objects.order_by("-seq").values_list("created_at", flat=True).first()
    assert newest is not None
    cases = {
        "CSV, tool + denied (whole period)": (queries.export_csv, {"tool": "tool_13", "outcome": "deny"}),
        "CSV, one week": (queries.export_csv, {"start": newest - dt.timedelta(days=7), "end": newest}),
        "JSON Lines, category=auth": (queries.export_jsonl, {"category": "auth"}),
        "CSV, everything": (queries.export_csv, {}),
    }
    print("(b) streamed exports: rows, MB, seconds, rows/s, time to the first chunk")
    for name, (produce, filters) in cases.items():
        start = time.perf_counter()
        first_chunk, size = None, 0
        for chunk in produce(filters):
            if first_chunk is None:
                first_chunk = (time.perf_counter() - start) * 1e3
            size += len(chunk)
        seconds = time.perf_counter() - start
        rows = queries.apply_filters(AuditEvent.objects.all(), filters).count()
        print(f"    {name:<34} {rows:>9,} rows {size / 1e6:8.1f} MB {seconds:7.2f} s {rows / seconds:>9,.0f}/s"
              f"  first chunk {first_chunk or 0:.0f} ms")  # fmt: skip
        report(f"(b) export {name}", seconds, "s", None, ".2f")


def bench_record(actor: User, calls: int) -> None:
    """What record() adds to a tool call: the call itself inside the call's transaction, and the whole
    transaction with and without it (the difference includes making the commit durable: a WAL flush)."""
    data = {"application": "demo", "tool": "deploy_production", "reason": "bench"}

    def tool_call(write: str) -> tuple[float, float]:
        start = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:  # stands for the decision's grants read
                cursor.execute("SELECT 1")
            inner = time.perf_counter()
            if write == "record":
                audit.record(actor, "mcp.tool_call", outcome="deny", data=data)
            elif write == "probe":
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO bench_commit_probe (note) VALUES ('x')")
            inner = time.perf_counter() - inner
        return inner * 1e3, (time.perf_counter() - start) * 1e3

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (id bigserial PRIMARY KEY, note text)")
    for _ in range(100):
        tool_call("record")
    runs = {write: [tool_call(write) for _ in range(calls)] for write in ("record", "none", "probe")}
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_commit_probe")
    inside = [inner for inner, _ in runs["record"]]
    whole = {write: statistics.median(total for _, total in samples) for write, samples in runs.items()}
    print(
        f"(c) record(), {calls} tool-call transactions each: median whole transaction {whole['none']:.3f} ms without "
        f"a write, {whole['record']:.3f} ms with record(), {whole['probe']:.3f} ms with a 1-row insert elsewhere"
    )
    report(
        "(c) record() inside the tool call's transaction, median",
        statistics.median(inside),
        "ms",
        TARGET_RECORD_MS,
        ".3f",
    )
    report(
        "(c) record() inside the tool call's transaction, p95", percentile(inside, 95), "ms", TARGET_RECORD_MS, ".3f"
    )
    report("(c) transaction with record() minus without, median", whole["record"] - whole["none"], "ms", None, ".3f")
    report("(c) reference: the same with a 1-row insert instead", whole["probe"] - whole["none"], "ms", None, ".3f")


def bench_verify() -> None:
    start = time.perf_counter()
    result = verify_chain()
    seconds = time.perf_counter() - start
    print(f"(d) {result.summary()}")
    report("(d) verify_audit, whole chain", seconds, "s", None, ".1f")
    report("(d) verify_audit, events/s", result.checked / seconds, "/s", None, ",.0f")


def explain(filters: dict[str, Any]) -> None:
    queryset = queries.apply_filters(AuditEvent.objects.all(), filters).newest_first()[:51]
    plan = queryset.explain()
    used = sorted({word for word in plan.replace("(", " ").split() if word.startswith("audit_")})
    print(f"    {json.dumps(filters, default=str)} → {', '.join(used) or 'no index'}")


def main() -> int:
    tenant = ensure_tenant()
    with schema_context(tenant.schema_name):
        print(f"Audit benchmark — tenant {SLUG} (schema {tenant.schema_name}), target {N_EVENTS:,} events")
        print(
            f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; DEBUG={settings.DEBUG}; database {connection.settings_dict['NAME']}"
        )
        added, seconds = load_events(N_EVENTS)
        total = AuditEvent.objects.count()
        if added:
            print(f"    loaded {added:,} events in {seconds:.0f} s ({added / seconds:,.0f}/s)")
            report("(0) load with COPY, events/s", added / seconds, "/s", None, ",.0f")
        print(f"    the tenant holds {total:,} events")
        newest = AuditEvent.objects.order_by("-seq").values_list("created_at", flat=True).first()
        assert newest is not None
        print("    indexes the filtered keyset queries use (EXPLAIN):")
        for filters in ({"outcome": "deny"}, {"actor": f"user0042@{SLUG}.test"}, {"tool": "tool_07"},
                        {"category": "rbac"}, {"start": newest - dt.timedelta(days=60)}):  # fmt: skip
            explain(filters)
        admin = User.objects.get(email=ADMIN)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(admin)
        bench_pages(client, newest, runs=int(os.environ.get("AUDIT_BENCH_RUNS", "20")))
        bench_exports()
        bench_record(admin, calls=int(os.environ.get("AUDIT_BENCH_RECORD_CALLS", "1000")))
        bench_verify()
    print()
    print_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
