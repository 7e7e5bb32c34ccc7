"""Audit events of MCP requests, written off the request path in small batches.

A tools/call must not wait for its own INSERT (docs/benchmarks.md), so handlers `submit` events to an
in-process queue that one writer thread flushes every `FLUSH_INTERVAL` seconds, one transaction and one
INSERT per tenant per batch, through `audit.record_many` (so the audit app's rules — redaction, hash chain —
apply).
Events are not lost on a clean shutdown: the root ASGI app's lifespan awaits a final flush. A failed write
is retried `MAX_ATTEMPTS` times and then logged with the events' content (never silently dropped). A
process crash can lose at most the last interval's events; that is the price of not blocking the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections
from django_tenants.utils import schema_context

from audit import context as audit_context
from audit.recorder import Entry

logger = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.05
MAX_ATTEMPTS = 3


@dataclass
class PendingEvent:
    schema: str
    actor: Any
    action: str
    outcome: str
    data: dict[str, Any]
    target: Any = None
    context: audit_context.RequestContext = audit_context.RequestContext()  # noqa: RUF009 - frozen dataclass
    attempts: int = 0


def write_events(events: list[PendingEvent]) -> list[PendingEvent]:
    """Write `events` (sync, in the writer thread); return the ones that could not be written."""
    import audit

    close_old_connections()
    by_schema: dict[str, list[PendingEvent]] = {}
    for event in events:
        by_schema.setdefault(event.schema, []).append(event)
    failed: list[PendingEvent] = []
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
        try:
            with schema_context(schema):
                audit.record_many(entries)
        except Exception:
            logger.exception("Could not write %d MCP audit events for %s", len(batch), schema)
            failed.extend(batch)
    return failed


class AuditWriter:
    """The per-process queue of MCP audit events and its flusher (entered by the root ASGI lifespan)."""

    def __init__(self) -> None:
        self._pending: list[PendingEvent] = []
        self._lock = threading.Lock()
        self._wakeup: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running = False

    def submit(self, event: PendingEvent) -> None:
        with self._lock:
            self._pending.append(event)
        if not self._running:
            # No lifespan (a bare test harness): write now in a thread, still off the caller's path.
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, self._flush_sync)

    def _take(self) -> list[PendingEvent]:
        with self._lock:
            events, self._pending = self._pending, []
        return events

    def _flush_sync(self) -> None:
        events = self._take()
        if not events:
            return
        failed = write_events(events)
        retry = []
        for event in failed:
            event.attempts += 1
            if event.attempts < MAX_ATTEMPTS:
                retry.append(event)
            else:
                logger.error(
                    "Dropping MCP audit event after %d attempts: %s %s", event.attempts, event.action, event.data
                )
        if retry:
            with self._lock:
                self._pending[:0] = retry

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._flush_sync)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[AuditWriter]:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-audit")
        self._running = True
        task = asyncio.create_task(self._loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._running = False
            await self.flush()
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            if self._pending:
                try:
                    await self.flush()
                except Exception:  # noqa: BLE001 - keep flushing whatever happens
                    logger.exception("MCP audit flush failed")
