"""Prometheus metrics: every metric AuthSec exports is defined here, and only here (docs/observability.md).

Call sites count with one line each: a pre-bound child (`GRANTS_CACHE_LOCAL.inc()`) or a small function of this
module. Labels are bounded: tenant and application slugs, registered tool names, service and workload names an
admin chose, and fixed vocabularies (outcome, grant, method, limit); never a user id, a token id or anything a
caller can make up.

Multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` and ``make test`` set it), every process
(web, Celery worker, the web process's audit process) writes its values to files there, and `/metrics` sums them.
The variable must be set before `prometheus_client` is first imported: it picks its value store at import.

The tools/call path is counted without touching `prometheus_client` per call: `tool_call` adds to plain integers
of a tally kept per (tenant, application, tool), and `flush` (every `FLUSH_INTERVAL` on the web process's event
loop, and before each scrape) moves what was added since into the pre-bound children of that tally. A counted
call costs a dict lookup and three additions; a `prometheus_client` counter and histogram in multiprocess mode
cost ≈ 3 µs per call (two file writes under a lock each), about 0.6 % of a tools/call (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROC_DIR:
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)  # before the import below: its first metric opens a file there

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

MULTIPROCESS = bool(_MULTIPROC_DIR)
FLUSH_INTERVAL = 1.0  # seconds between moves of the tools/call tallies into prometheus_client

# --- MCP endpoint ------------------------------------------------------------------------------------------------

# The outcome of an MCP request. `error`: refused as malformed (400, 415), or allowed but not completed (invalid
# arguments, a tool error, a tool that failed).
OUTCOMES = ("allowed", "denied", "unauthenticated", "error")
ALLOWED, DENIED, UNAUTHENTICATED, ERROR = range(4)
# `unknown`: refused by the endpoint's gate before the body was read (no credentials, a bad token, a bad body).
METHODS = ("tools/call", "tools/list", "unknown")

MCP_REQUESTS = Counter(
    "authsec_mcp_requests",
    "MCP requests by method and outcome (tools/list and tools/call, and what the gate refused).",
    ["tenant", "application", "method", "outcome"],
)
MCP_TOOL_CALLS = Counter(
    "authsec_mcp_tool_calls",
    "tools/call requests by tool and outcome (tool is empty for a name that is not a registered tool).",
    ["tenant", "application", "tool", "outcome"],
)
TOOL_CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MCP_TOOL_CALL_SECONDS = Histogram(
    "authsec_mcp_tool_call_duration_seconds",
    "Time from a tools/call reaching its handler to its result, for calls that were allowed (denials excluded).",
    ["tenant", "application", "tool"],
    buckets=TOOL_CALL_BUCKETS,
)
MCP_TOOLS_LISTED = Histogram(
    "authsec_mcp_tools_listed",
    "Number of tools a tools/list answered with.",
    ["tenant", "application"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)


class _ToolCallTally:
    """The tools/call counts of one (tenant, application, tool): plain numbers added on the event loop by `record`,
    moved into their pre-bound `prometheus_client` children by `flush` (from any thread: the numbers only grow,
    and `flush` moves the difference to what it moved before)."""

    __slots__ = ("buckets", "counts", "seconds", "_calls", "_duration", "_moved", "_requests")

    def __init__(self, tenant: str, application: str, tool: str) -> None:
        self.counts = [0] * len(OUTCOMES)
        self.buckets = [0] * (len(TOOL_CALL_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0
        self._calls = [MCP_TOOL_CALLS.labels(tenant, application, tool, outcome) for outcome in OUTCOMES]
        self._requests = [MCP_REQUESTS.labels(tenant, application, "tools/call", outcome) for outcome in OUTCOMES]
        self._duration = MCP_TOOL_CALL_SECONDS.labels(tenant, application, tool)
        self._moved: tuple[list[int], list[int], float] = (list(self.counts), list(self.buckets), 0.0)

    def record(self, outcome: int, started: float) -> None:
        self.counts[outcome] += 1
        if outcome != DENIED:
            seconds = time.perf_counter() - started
            self.buckets[bisect_left(TOOL_CALL_BUCKETS, seconds)] += 1  # first bound ≥ seconds: Prometheus' `le`
            self.seconds += seconds

    def flush(self) -> None:
        counts, buckets, seconds = list(self.counts), list(self.buckets), self.seconds
        moved_counts, moved_buckets, moved_seconds = self._moved
        for index, (now, before) in enumerate(zip(counts, moved_counts, strict=True)):
            if now != before:
                self._calls[index].inc(now - before)
                self._requests[index].inc(now - before)
        if buckets != moved_buckets:
            # prometheus_client 0.26 keeps a histogram child's buckets uncumulated, one value each, and its sum:
            # adding to them is what `observe` does, once per observation (pinned in requirements.in).
            for index, (now, before) in enumerate(zip(buckets, moved_buckets, strict=True)):
                if now != before:
                    self._duration._buckets[index].inc(now - before)  # noqa: SLF001
            self._duration._sum.inc(seconds - moved_seconds)  # noqa: SLF001
        self._moved = (counts, buckets, seconds)


_tool_calls: dict[tuple[str, str, str], _ToolCallTally] = {}
_flush_lock = threading.Lock()


def tool_call(tenant: str, application: str, tool: str | None, decision: str, failed: bool, started: float) -> None:
    """Count one tools/call (call it on the event loop). `tool`: a registered name, or None for any other name;
    `decision`: "allow" or "deny" (the audit log's words); `failed`: allowed, but not completed (invalid arguments,
    a tool error or failure); `started`: its `time.perf_counter()` when the handler got it."""
    key = (tenant, application, tool or "")
    tally = _tool_calls.get(key)
    if tally is None:
        tally = _tool_calls[key] = _ToolCallTally(*key)
    tally.record(DENIED if decision != "allow" else ERROR if failed else ALLOWED, started)


def flush() -> None:
    """Move the tools/call tallies of this process into `prometheus_client` (its files, in multiprocess mode)."""
    with _flush_lock:
        for tally in list(_tool_calls.values()):
            tally.flush()


@contextlib.asynccontextmanager
async def flushing() -> AsyncIterator[None]:
    """Flush every `FLUSH_INTERVAL` for the block, and once more at its end (the root ASGI lifespan)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush()


_listed: dict[tuple[str, str], tuple[Any, Any]] = {}


def tools_listed(tenant: str, application: str, count: int) -> None:
    """Count one tools/list answered with `count` tools."""
    children = _listed.get((tenant, application))
    if children is None:
        children = _listed[(tenant, application)] = (
            MCP_REQUESTS.labels(tenant, application, "tools/list", "allowed"),
            MCP_TOOLS_LISTED.labels(tenant, application),
        )
    children[0].inc()
    children[1].observe(count)


def mcp_refused(tenant: str, application: str, outcome: int, method: str = "unknown") -> None:
    """Count a request the endpoint's gate refused (`UNAUTHENTICATED`, `DENIED` or `ERROR`); tenant and
    application must be ones that exist (the gate knows them once the endpoint is resolved)."""
    MCP_REQUESTS.labels(tenant, application, method, OUTCOMES[outcome]).inc()


# --- OAuth, logins, throttles, registrations ---------------------------------------------------------------------

GRANTS = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "password": "password",
    "urn:ietf:params:oauth:grant-type:device_code": "device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer": "jwt_bearer",
}
# RFC 6749 §5.2, RFC 8707 and RFC 8628 error codes; any other error counts as `error`.
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "access_denied",
        "authorization_pending",
        "slow_down",
        "expired_token",
        "server_error",
        "temporarily_unavailable",
    }
)

OAUTH_TOKEN_REQUESTS = Counter(
    "authsec_oauth_token_requests",
    "Token endpoint requests by grant type and outcome (success, or the OAuth error code).",
    ["tenant", "grant", "outcome"],
)
LOGINS = Counter("authsec_logins", "Sign-ins by outcome (success, failure).", ["tenant", "outcome"])
THROTTLED = Counter(
    "authsec_throttled_requests",
    "Requests refused by a rate limit or lockout: login (a locked account or address), sdk_call, sdk_login.",
    ["tenant", "limit"],
)
DCR_REGISTRATIONS = Counter(
    "authsec_dcr_registrations",
    "Dynamic client registrations by status: active, pending (held for approval), refused.",
    ["tenant", "status"],
)


def current_tenant() -> str:
    """The slug of the tenant the database connection is in (``public`` outside any tenant). In a schema entered
    by name (`schema_context`: tasks, the audit process) the slug is read back from the schema's name, which is
    ``tenant_`` and the slug with its hyphens as underscores (slugs have no underscores)."""
    from django.db import connection

    slug = getattr(getattr(connection, "tenant", None), "slug", "")
    if slug:
        return str(slug)
    schema = str(getattr(connection, "schema_name", "") or "public")
    return schema.removeprefix("tenant_").replace("_", "-") if schema.startswith("tenant_") else schema


def token_request(grant_type: str | None, status: int, content: bytes) -> None:
    """Count one token endpoint answer: its grant type (as sent) and, for an error, the OAuth error code."""
    outcome = "success"
    if status != 200:
        import json

        try:
            error = json.loads(content).get("error")
        except (ValueError, AttributeError):
            error = None
        outcome = error if error in TOKEN_ERRORS else "error"
    OAUTH_TOKEN_REQUESTS.labels(current_tenant(), GRANTS.get(grant_type or "", "other"), outcome).inc()


def login(succeeded: bool) -> None:
    LOGINS.labels(current_tenant(), "success" if succeeded else "failure").inc()


def throttled(limit: str) -> None:
    """Count a request refused by the named limit (one of `THROTTLED`'s vocabulary)."""
    THROTTLED.labels(current_tenant(), limit).inc()


def dcr_registration(status: str) -> None:
    DCR_REGISTRATIONS.labels(current_tenant(), status).inc()


# --- Credentials, grants, audit -----------------------------------------------------------------------------------

CREDENTIAL_ROTATIONS = Counter(
    "authsec_credential_rotations",
    "Service credential rotations by outcome (success, failure).",
    ["tenant", "service", "outcome"],
)


def rotation(service: str, succeeded: bool) -> None:
    CREDENTIAL_ROTATIONS.labels(current_tenant(), service, "success" if succeeded else "failure").inc()


GRANTS_CACHE = Counter(
    "authsec_rbac_grants_cache_lookups",
    "Lookups of a user's effective grants by where they were found: local (process), redis, miss (database).",
    ["result"],
)
GRANTS_CACHE_LOCAL = GRANTS_CACHE.labels("local")
GRANTS_CACHE_REDIS = GRANTS_CACHE.labels("redis")
GRANTS_CACHE_MISS = GRANTS_CACHE.labels("miss")

# livesum: the backlogs of the live web processes, added up.
AUDIT_QUEUE_DEPTH = Gauge(
    "authsec_audit_queue_depth",
    "Audit events a web process holds that are not written yet (queued, or sent to its audit process and not "
    "acknowledged).",
    multiprocess_mode="livesum",
)
AUDIT_BATCH_SECONDS = Histogram(
    "authsec_audit_batch_write_seconds",
    "Time to write one batch of queued audit events of one tenant (a transaction of `record_many`).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AUDIT_EVENTS_WRITTEN = Counter("authsec_audit_events_written", "Queued audit events written to the audit log.")
AUDIT_EVENTS_DROPPED = Counter(
    "authsec_audit_events_dropped",
    "Queued audit events given up (logged with their content instead): failed writes, or a backlog over its bound.",
)


def audit_batch(events: int, started: float) -> None:
    """Count one batch of `events` written since `started` (a `time.perf_counter()` reading)."""
    AUDIT_BATCH_SECONDS.observe(time.perf_counter() - started)
    AUDIT_EVENTS_WRITTEN.inc(events)


# --- State read at scrape time -------------------------------------------------------------------------------------


@dataclass
class State:
    """What `/metrics` reads when it is scraped (the wiring fills it in: authsec_site.observability)."""

    dependencies: dict[str, bool] = field(default_factory=dict)  # database, redis, vault → answering
    rotation_ages: list[tuple[str, str, float]] = field(default_factory=list)  # tenant, service, seconds
    # tenant, workload, seconds until the SVID expires, its whole lifetime in seconds
    svid_expiries: list[tuple[str, str, float, float]] = field(default_factory=list)


def _state_families(state: State) -> Iterable[Metric]:
    up = GaugeMetricFamily(
        "authsec_dependency_up", "1 when the dependency answers its health check.", labels=["dependency"]
    )
    for name, answering in sorted(state.dependencies.items()):
        up.add_metric([name], 1.0 if answering else 0.0)
    age = GaugeMetricFamily(
        "authsec_credential_rotation_last_success_age_seconds",
        "Seconds since the last successful rotation of each rotating service (never rotated: absent).",
        labels=["tenant", "service"],
    )
    for tenant, service, seconds in state.rotation_ages:
        age.add_metric([tenant, service], seconds)
    svid = GaugeMetricFamily(
        "authsec_svid_expiry_seconds",
        "Seconds until the current X.509-SVID of each enabled workload expires (negative: expired).",
        labels=["tenant", "workload"],
    )
    lifetime = GaugeMetricFamily(
        "authsec_svid_lifetime_seconds",
        "Whole lifetime of the current X.509-SVID of each enabled workload (renewal is due after "
        "SVID_RENEW_FRACTION of it).",
        labels=["tenant", "workload"],
    )
    for tenant, workload, seconds, total in state.svid_expiries:
        svid.add_metric([tenant, workload], seconds)
        lifetime.add_metric([tenant, workload], total)
    return [up, age, svid, lifetime]


class _StateCollector:
    def __init__(self, read: Callable[[], State]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        return _state_families(self.read())


def exposition(read_state: Callable[[], State]) -> tuple[bytes, str]:
    """The text exposition of every process's metrics and of `read_state()`, with its content type."""
    flush()
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(_StateCollector(read_state))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """The default registry of this process (single-process mode), as a collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()
