"""The web process's queue of audit events (`audit.enqueue`) and what hands it to the writer, every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from audit.pipeline.spool import ADOPT_INTERVAL, Spool
from audit.pipeline.supervisor import AuditProcess
from audit.pipeline.wire import decode_event, encode_event, mark_adopted
from audit.pipeline.write import DatabaseUnavailable, write_with_retries
from authsec_site.lib import metrics, tracing
from authsec_site.lib.background import background

logger = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.2
CLOSE_TIMEOUT = 30.0  # seconds the audit process gets, at shutdown, to write and acknowledge what it holds


class AuditQueue:
    """Events waiting for the next flush, and the writer they go to: the audit process, or a thread of this
    process (``MCP_AUDIT_WRITER=thread``, or the audit process could not be started). Outside `run` (a bare
    test harness) each event is written at once in a thread, still off the caller's path.

    While it runs, every event is journalled in this process's spool (`spool`) as it is queued, and its segment
    is deleted once the batch is in the log: a SIGKILL loses nothing whose `enqueue` returned."""

    def __init__(self, mode: str | None = None) -> None:
        self._pending: list[bytes] = []  # encoded events (`wire.encode_event`)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._running = False
        self._mode = mode
        self.process: AuditProcess | None = None
        self.spool: Spool | None = None

    def put(self, wire: list[Any]) -> None:
        """Queue an event built with `wire.wire_event`: encoded and journalled now, written off the caller's path."""
        blob = encode_event(wire)
        with self._lock:
            self._pending.append(blob)
            if self.spool is not None and self._running:
                self.spool.append(blob)
        if not self._running:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a thread without an event loop (a sync view as the pipeline stops): write here
                self._write_in_thread(self.take())
            else:
                loop.run_in_executor(None, self._write_in_thread, self.take())

    def _put_adopted(self, blobs: list[bytes]) -> None:
        blobs = [mark_adopted(blob) for blob in blobs]
        with self._lock:
            self._pending.extend(blobs)
            if self.spool is not None:
                for blob in blobs:
                    self.spool.append(blob)

    def take(self) -> list[bytes]:
        """The encoded events waiting for the next flush (they are the caller's now)."""
        return self._take()[0]

    def _take(self) -> tuple[list[bytes], int]:
        """`take`, and the number of the spool segment that holds those events (0: no spool)."""
        with self._lock:
            blobs, self._pending = self._pending, []
            seq = self.spool.rotate() if self.spool is not None and blobs else 0
        return blobs, seq

    def _write_in_thread(self, blobs: list[bytes]) -> bool:
        """Write `blobs` here; False when the database stayed unreachable (at shutdown, after `CLOSE_TIMEOUT`:
        while running it is waited for), and the events are left to the spool."""
        if not blobs:
            return True
        try:
            write_with_retries(
                [decode_event(blob) for blob in blobs], patience=None if self._running else CLOSE_TIMEOUT
            )
        except DatabaseUnavailable:
            logger.error("Audit: the database stayed unreachable; %d events wait in the spool", len(blobs))
            return False
        return True

    def _write_backlog_in_thread(self, blobs: list[bytes]) -> None:
        """The audit process's unacknowledged batches (it gave up, or shutdown): every closed segment's events."""
        if self._write_in_thread(blobs) and self.spool is not None:
            self.spool.done_before_current()

    def _write_segment_in_thread(self, blobs: list[bytes], seq: int) -> None:
        if self._write_in_thread(blobs) and self.spool is not None and seq:
            self.spool.done(seq)

    async def flush(self) -> None:
        """Hand what is pending to the audit process (or write it in this process's writer thread)."""
        blobs, seq = self._take()
        if not blobs:
            return
        if self.process is not None and not self.process.gave_up:
            self.process.send(blobs, seq or None)
            return
        loop = asyncio.get_running_loop()
        if self.process is not None and self.process.backlog:
            # It gave up: its backlog is written here, and with it every segment before this one.
            await loop.run_in_executor(self._executor, self._write_backlog_in_thread, self.process.take_unacked())
        await loop.run_in_executor(self._executor, self._write_segment_in_thread, blobs, seq)

    def _adopt(self) -> None:
        """Queue (and journal) what dead processes left in their spools."""
        if self.spool is not None:
            try:
                self.spool.adopt(self._put_adopted)
            except OSError:
                logger.exception("Could not adopt audit spools in %s", self.spool.parent)

    def _open_spool(self) -> None:
        spool = Spool(settings.AUDIT_SPOOL_DIR, str(settings.DATABASES["default"]["NAME"]))
        try:
            spool.open()
        except OSError:
            # The log still works, with the promise of a queue in memory (docs/audit.md).
            logger.exception("Audit spool %s cannot be used: events wait in memory only", spool.directory)
            return
        self.spool = spool

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[AuditQueue]:
        """Flush every `FLUSH_INTERVAL` while the block runs; on leaving it, write everything queued before."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        supervisor: asyncio.Task[None] | None = None
        self.process = None
        self.spool = None
        self._open_spool()
        self._adopt()
        if (self._mode or settings.MCP_AUDIT_WRITER) == "process":
            self.process = AuditProcess(self.spool)
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
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._write_backlog_in_thread, leftover
                    )
            if self.spool is not None:
                self.spool.close()
                self.spool = None
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _loop(self) -> None:
        adopted_at = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            if time.monotonic() - adopted_at >= ADOPT_INTERVAL:
                adopted_at = time.monotonic()
                self._adopt()
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
    counterpart of `audit.record`, for callers that must not wait for an INSERT. Call it on the event loop, or from
    any thread while the pipeline runs (`running`)."""
    current.put(event)


def running() -> bool:
    """Whether this process's pipeline runs, so that an `enqueue`d event is journalled in the spool before `enqueue`
    returns (from any thread: a sync view's too)."""
    return current._running  # noqa: SLF001 - the module's own queue


@contextlib.contextmanager
def running_in_thread() -> Iterator[AuditQueue]:
    """Run this process's pipeline for the block on an event loop of its own thread: for a process without an ASGI
    lifespan that serves Django views as a server process does (a benchmark, a test). On leaving, everything queued
    is written."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="audit-pipeline-loop", daemon=True)
    thread.start()
    started, stop = threading.Event(), asyncio.Event()

    async def run() -> None:
        async with current.run():
            started.set()
            await stop.wait()

    done = asyncio.run_coroutine_threadsafe(run(), loop)
    try:
        while not started.wait(0.05):
            if done.done():
                done.result()  # start-up failed: its error
        yield current
    finally:
        loop.call_soon_threadsafe(stop.set)
        try:
            done.result(timeout=CLOSE_TIMEOUT + 30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def run_pipeline() -> contextlib.AbstractAsyncContextManager[AuditQueue]:
    """Run this process's pipeline (its audit process, the flushes) for the block: the root ASGI lifespan."""
    return current.run()
