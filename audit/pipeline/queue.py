"""The web process's queue of audit events (`audit.enqueue`) and what hands it to the writer, every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from audit.pipeline.supervisor import AuditProcess
from audit.pipeline.wire import decode_event, encode_event
from audit.pipeline.write import write_with_retries
from authsec_site.lib import metrics, tracing
from authsec_site.lib.background import background

logger = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.2
CLOSE_TIMEOUT = 30.0  # seconds the audit process gets, at shutdown, to write and acknowledge what it holds


class AuditQueue:
    """Events waiting for the next flush, and the writer they go to: the audit process, or a thread of this
    process (``MCP_AUDIT_WRITER=thread``, or the audit process could not be started). Outside `run` (a bare
    test harness) each event is written at once in a thread, still off the caller's path."""

    def __init__(self, mode: str | None = None) -> None:
        self._pending: list[bytes] = []  # encoded events (`wire.encode_event`)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._running = False
        self._mode = mode
        self.process: AuditProcess | None = None

    def put(self, wire: list[Any]) -> None:
        """Queue an event built with `wire.wire_event`: encoded now, written off the caller's path."""
        blob = encode_event(wire)
        with self._lock:
            self._pending.append(blob)
        if not self._running:
            asyncio.get_running_loop().run_in_executor(None, self._write_in_thread, self.take())

    def take(self) -> list[bytes]:
        """The encoded events waiting for the next flush (they are the caller's now)."""
        with self._lock:
            blobs, self._pending = self._pending, []
        return blobs

    @staticmethod
    def _write_in_thread(blobs: list[bytes]) -> None:
        if blobs:
            write_with_retries([decode_event(blob) for blob in blobs])

    async def flush(self) -> None:
        """Hand what is pending to the audit process (or write it in this process's writer thread)."""
        blobs = self.take()
        if not blobs:
            return
        if self.process is not None and not self.process.gave_up:
            self.process.send(blobs)
            return
        if self.process is not None:
            blobs = self.process.take_unacked() + blobs  # it gave up: its backlog is written here
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write_in_thread, blobs)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[AuditQueue]:
        """Flush every `FLUSH_INTERVAL` while the block runs; on leaving it, write everything queued before."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        supervisor: asyncio.Task[None] | None = None
        self.process = None
        if (self._mode or settings.MCP_AUDIT_WRITER) == "process":
            self.process = AuditProcess()
            supervisor = asyncio.create_task(self.process.supervise())
        self._running = True
        try:
            async with background(self._loop()):
                yield self
        finally:
            self._running = False
            metrics.AUDIT_QUEUE_DEPTH.set(0)
            await self.flush()
            if self.process is not None and supervisor is not None:
                await self.process.close(supervisor, timeout=CLOSE_TIMEOUT)
                leftover = self.process.take_unacked()
                if leftover:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._write_in_thread, leftover)
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            metrics.AUDIT_QUEUE_DEPTH.set(len(self._pending) + (self.process.backlog if self.process else 0))
            if self._pending:
                try:
                    await self.flush()
                except Exception:  # noqa: BLE001 - keep flushing whatever happens
                    logger.exception("Audit flush failed")


# This process's queue: `audit.enqueue` puts into it, `audit.run_pipeline` runs it.
current = AuditQueue()


@tracing.traced("audit.enqueue")
def enqueue(event: list[Any]) -> None:
    """Queue one event (built with `audit.queued_event`) for the audit log, off the caller's path: the hot-path
    counterpart of `audit.record`, for callers that must not wait for an INSERT. Call it on the event loop."""
    current.put(event)


def run_pipeline() -> contextlib.AbstractAsyncContextManager[AuditQueue]:
    """Run this process's pipeline (its audit process, the flushes) for the block: the root ASGI lifespan."""
    return current.run()
