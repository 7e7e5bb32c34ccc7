"""How the pipeline's batches land in the audit log: `audit.record_many` per tenant, retried, never silently lost."""

from __future__ import annotations

import logging
import time

from django.db import close_old_connections, connections
from django_tenants.utils import schema_context

from audit.pipeline.wire import QueuedEvent
from audit.recorder import Entry, record_many
from authsec_site.lib import metrics

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
RETRY_DELAY = 0.5
HEALTHY_FOR = 1.0  # seconds after a committed batch during which the audit process trusts its connection


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


def write_events(events: list[QueuedEvent], *, dedicated: bool = False) -> list[QueuedEvent]:
    """Write `events` (sync); return the ones that could not be written.

    `dedicated`: the caller is the audit process, whose connection does nothing else (see `_Connection`)."""
    if not dedicated:
        close_old_connections()
    by_schema: dict[str, list[QueuedEvent]] = {}
    for event in events:
        by_schema.setdefault(event.schema, []).append(event)
    failed: list[QueuedEvent] = []
    for schema, batch in by_schema.items():
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
        except Exception:
            logger.exception("Could not write %d queued audit events for %s", len(batch), schema)
            failed.extend(batch)
    return failed


def write_with_retries(events: list[QueuedEvent], *, delay: float = RETRY_DELAY, dedicated: bool = False) -> None:
    """Write `events`, retrying what fails `MAX_ATTEMPTS` times in all; then log what is given up.

    A batch is all or nothing per tenant, so retries write the failed events one by one: one event that cannot
    be written (a bug elsewhere) does not take the others down with it."""
    events = write_events(events, dedicated=dedicated)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        if not events:
            return
        time.sleep(delay * (attempt - 1))
        events = [event for single in events for event in write_events([single], dedicated=dedicated)]
    metrics.AUDIT_EVENTS_DROPPED.inc(len(events))
    for event in events:
        logger.error("Dropping audit event after %d attempts: %s %s", MAX_ATTEMPTS, event.action, event.data)
