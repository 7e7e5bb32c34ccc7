"""How the pipeline's batches land in the audit log: `audit.record_many` per tenant, retried, never silently lost."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from audit.pipeline.wire import QueuedEvent
from audit.recorder import Entry, record_many, stored_fields
from authsec_site.lib import metrics

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
RETRY_DELAY = 0.5
HEALTHY_FOR = 1.0  # seconds after a committed batch during which the audit process trusts its connection
MAX_OUTAGE_DELAY = 2.0  # seconds between tries while the database is unreachable


class _Connection:
    """The audit process's database connection: it writes nothing but these batches, one after another."""

    last_ok = float("-inf")

    @classmethod
    def prepare(cls, schema: str) -> None:
        """Django's per-request connection upkeep, minus two round trips per batch that prove nothing new.

        - The health check (a ``SELECT 1``) is skipped while the previous batch committed moments ago on this
          connection, with no error since and within its maximum age; otherwise it runs as usual.
        - The schema is switched only when it changes (staying in it is what saves its ``SET search_path``)."""
        connection, now = connections["default"], time.monotonic()
        fresh = now - cls.last_ok < HEALTHY_FOR and connection.connection is not None
        if not fresh or connection.errors_occurred or (connection.close_at is not None and connection.close_at <= now):
            close_old_connections()
        if connection.schema_name != schema:
            connection.set_schema(schema)


class DatabaseUnavailable(Exception):
    """The database could not be reached for the whole of a writer's patience: the events were not written."""


class _Unreachable(Exception):
    """Some tenants' events met an unreachable database (the others were written or failed on their own)."""

    def __init__(self, failed: list[QueuedEvent], unreachable: list[QueuedEvent], cause: Exception) -> None:
        super().__init__(str(cause))
        self.failed, self.unreachable = failed, unreachable


RECENT = 100_000  # events of a schema, newest first, among which an adopted event's earlier copy is looked for


def _not_written_yet(events: list[QueuedEvent]) -> list[QueuedEvent]:
    """`events` less the adopted ones already in the current schema's log.

    A dead process's batch may have been committed in the instant before the kill, its spool segment not yet
    deleted. An event is the same when its request id, action, outcome and stored data (redacted, with its
    duration) are; each copy in the log cancels one adopted copy. Looked for among the newest `RECENT` events
    (the index on ``seq``): the copy, if any, was written moments before the adopting node's start."""
    adopted = [event for event in events if event.adopted and event.context.request_id]
    if not adopted:
        return events
    recent = AuditEvent.objects.order_by("-seq").values("pk")[:RECENT]
    rows = AuditEvent.objects.filter(pk__in=recent, request_id__in={e.context.request_id for e in adopted})
    found = Counter(
        (rid, action, outcome, _canonical(data))
        for rid, action, outcome, data in rows.values_list("request_id", "action", "outcome", "data")
    )
    if not found:
        return events
    kept = []
    for event in events:
        if event.adopted and event.context.request_id:
            stored = stored_fields(event.actor, event.action, event.target, event.data, event.outcome, event.context)
            key = (event.context.request_id, event.action, event.outcome, _canonical(stored["data"]))
            if found[key] > 0:
                found[key] -= 1
                continue
        kept.append(event)
    if len(kept) < len(events):
        logger.warning("Audit: %d adopted events were already written; not written again", len(events) - len(kept))
    return kept


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_events(events: list[QueuedEvent], *, dedicated: bool = False) -> list[QueuedEvent]:
    """Write `events` (sync); return the ones that could not be written.

    `dedicated`: the caller is the audit process, whose connection does nothing else (see `_Connection`)."""
    if not dedicated:
        close_old_connections()
    by_schema: dict[str, list[QueuedEvent]] = {}
    for event in events:
        by_schema.setdefault(event.schema, []).append(event)
    failed: list[QueuedEvent] = []
    unreachable: list[QueuedEvent] = []
    cause: Exception | None = None
    for schema, batch in by_schema.items():
        try:
            if dedicated:
                _Connection.prepare(schema)
                batch = _not_written_yet(batch)
            else:
                with schema_context(schema):
                    batch = _not_written_yet(batch)
        except (OperationalError, InterfaceError) as exc:
            unreachable.extend(batch)
            cause = exc
            continue
        if not batch:
            continue
        entries = [
            Entry(
                event.actor,
                event.action,
                target=event.target,
                data=event.data,
                outcome=event.outcome,
                context=event.context,
            )
            for event in batch
        ]
        started = time.perf_counter()
        try:
            if dedicated:
                _Connection.prepare(schema)
                record_many(entries)
                _Connection.last_ok = time.monotonic()
            else:
                with schema_context(schema):
                    record_many(entries)
            metrics.audit_batch(len(entries), started)
        except (OperationalError, InterfaceError) as exc:
            unreachable.extend(batch)  # the database is unreachable (or restarting): not the events' fault
            cause = exc
        except Exception:
            logger.exception("Could not write %d queued audit events for %s", len(batch), schema)
            failed.extend(batch)
    if cause is not None:
        raise _Unreachable(failed, unreachable, cause)
    return failed


def _write_through_outages(
    events: list[QueuedEvent], dedicated: bool, patience: float | None, delay: float
) -> list[QueuedEvent]:
    """`write_events`, tried again while the database is unreachable, for up to `patience` seconds (None: until
    it is back); raises `DatabaseUnavailable` when patience runs out."""
    started, wait = time.monotonic(), delay
    failed: list[QueuedEvent] = []
    while True:
        try:
            return failed + write_events(events, dedicated=dedicated)
        except _Unreachable as exc:
            failed.extend(exc.failed)
            events = exc.unreachable
            if patience is not None and time.monotonic() - started + wait > patience:
                raise DatabaseUnavailable(str(exc)) from exc
            logger.warning("Audit writer: database unavailable (%s); trying again in %.1fs", exc, wait)
            time.sleep(wait)
            wait = min(wait * 2, MAX_OUTAGE_DELAY)
            close_old_connections()


def write_with_retries(
    events: list[QueuedEvent],
    *,
    delay: float = RETRY_DELAY,
    dedicated: bool = False,
    patience: float | None = None,
) -> None:
    """Write `events`, retrying what fails `MAX_ATTEMPTS` times in all; then log what is given up.

    A batch is all or nothing per tenant, so retries write the failed events one by one: one event that cannot
    be written (a bug elsewhere) does not take the others down with it. An unreachable database is no fault of
    the events: it is waited for (`patience` seconds, None: as long as it takes), then `DatabaseUnavailable`
    is raised with nothing given up, so the caller keeps the events (their spool segment stays)."""
    events = _write_through_outages(events, dedicated, patience, delay)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        if not events:
            return
        time.sleep(delay * (attempt - 1))
        events = [event for single in events for event in _write_through_outages([single], dedicated, patience, delay)]
    metrics.AUDIT_EVENTS_DROPPED.inc(len(events))
    for event in events:
        logger.error("Dropping audit event after %d attempts: %s %s", MAX_ATTEMPTS, event.action, event.data)
