"""Audit events of MCP requests, written off the request path in batches, by a child process.

A tools/call must not wait for its own INSERT, and in the web process the writing itself was most of what the
endpoint added to a call: linking, hashing and COPYing each event, and above all holding the GIL that the
event loop needs (docs/benchmarks.md). So handlers `submit` events to an in-memory list that is handed over
every `FLUSH_INTERVAL` seconds, one batch at a time, to this web process's own audit process
(`mcp_endpoint.audit_process`, started and supervised here, fed through a pipe). It writes each batch with
`audit.record_many` (redaction and the hash chain apply) and acknowledges it.

What is not lost:
- a clean shutdown: the lifespan flushes, closes the pipe and waits for the last acknowledgement;
- the audit process dying: batches it has not acknowledged are sent again to its replacement (a batch that
  was committed just before the crash can then appear twice: duplicated rather than lost);
- the web process dying: the audit process still writes every batch it has received, then exits at the end
  of the pipe. What was submitted but not yet handed over (at most one interval) is lost.
- a failed write is retried `MAX_ATTEMPTS` times, then logged with the events' content, never silently dropped.
If the audit process cannot be started, or with ``MCP_AUDIT_WRITER=thread``, a writer thread in this process
does the same work (as it does without a lifespan, in a bare test harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connections
from django_tenants.utils import schema_context

from audit import context as audit_context
from audit.recorder import Actor, Entry
from authsec_site.lib.background import background

logger = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.2
MAX_ATTEMPTS = 3
RETRY_DELAY = 0.5
START_TIMEOUT = 60.0
MAX_RESTARTS = 5  # in a row without a successful start: then this process writes itself
HEALTHY_FOR = 1.0  # seconds after a committed batch during which the audit process trusts its connection
MAX_UNACKED_EVENTS = 200_000  # beyond this (the audit process stuck) the oldest batch is logged and dropped


class _WireEncoder(DjangoJSONEncoder):
    """Django's JSON types, and anything else as its ``str()``: one odd value must not lose a whole batch."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


_ENCODER = _WireEncoder(separators=(",", ":"))


@dataclass(slots=True)
class PendingEvent:
    schema: str
    actor: Any
    action: str
    outcome: str
    data: dict[str, Any]
    target: Any = None
    context: audit_context.RequestContext = audit_context.RequestContext()  # noqa: RUF009 - a named tuple

    def to_wire(self) -> list[Any]:
        actor = self.actor if isinstance(self.actor, Actor) else Actor("system", "", str(self.actor))
        ctx = self.context
        target = list(self.target) if isinstance(self.target, tuple) else self.target
        return wire_event(self.schema, actor_wire(actor), self.action, self.outcome, self.data, target,
                          [ctx.request_id, ctx.ip, ctx.user_agent])  # fmt: skip

    @classmethod
    def from_wire(cls, item: list[Any]) -> PendingEvent:
        schema, actor, action, outcome, data, target, ctx = item
        return cls(
            schema=schema,
            actor=Actor(*actor),
            action=action,
            outcome=outcome,
            data=data,
            target=tuple(target) if isinstance(target, list) else target,
            context=audit_context.RequestContext(*ctx),
        )


def actor_wire(actor: Actor) -> list[Any]:
    """An actor as the wire carries it. Its type is a str enum (`AuditEvent.ActorType`): its plain value is what
    JSON wrote, and marshal takes only exact str."""
    return [str.__str__(actor.type), actor.id, actor.label]


def wire_event(
    schema: str, actor: list[Any], action: str, outcome: str, data: dict[str, Any], target: Any, context: list[Any]
) -> list[Any]:
    """One event as the wire carries it (what `PendingEvent.to_wire` gives; the MCP handlers build it directly)."""
    return [schema, actor, action, outcome, data, target, context]


# The pipe carries events encoded one by one, when they are submitted: a tag byte, then the event in `marshal`
# (Python's own format for its core types: our scalars and JSON-decoded request arguments; a seventh of the cost
# of JSON here, a fifth to decode), or, for an event holding any other type (a date, a UUID: only a future
# producer could add one), in JSON with each odd value as Django encodes it or as its ``str()``. Encoding at
# submit time means a pending event is one bytes object, which the garbage collector does not track: the
# thousands of event lists and dicts waiting for a flush kept it busy. A batch is a tag byte and the marshalled
# list of its events' bytes. The pipe runs only between this process and the child it started, with the same code.
_MARSHAL, _JSON, _BATCH = b"M", b"J", b"B"
_MARSHAL_VERSION = 4


def encode_event(wire: list[Any]) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(wire, _MARSHAL_VERSION)
    except ValueError:  # "unmarshallable object"
        return _JSON + _ENCODER.encode(wire).encode()


def decode_event(blob: bytes) -> PendingEvent:
    tag = blob[:1]
    if tag == _MARSHAL:
        item = marshal.loads(blob[1:])  # noqa: S302 - written by our own parent process, on a pipe only it holds
    elif tag == _JSON:
        item = json.loads(blob[1:])
    else:
        raise ValueError(f"unknown audit event format {tag!r}")
    return PendingEvent.from_wire(item)


def pack_batch(blobs: list[bytes]) -> bytes:
    """A batch of encoded events, as it goes on the pipe."""
    return _BATCH + marshal.dumps(blobs, _MARSHAL_VERSION)


def unpack_batch(payload: bytes) -> list[bytes]:
    if payload[:1] != _BATCH:
        raise ValueError(f"unknown audit batch format {payload[:1]!r}")
    blobs = marshal.loads(payload[1:])  # noqa: S302 - as above
    if not isinstance(blobs, list) or not all(isinstance(blob, bytes) for blob in blobs):
        raise ValueError("malformed audit batch")
    return blobs


def decode_batch(payload: bytes) -> list[PendingEvent]:
    return [decode_event(blob) for blob in unpack_batch(payload)]


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


def write_events(events: list[PendingEvent], *, dedicated: bool = False) -> list[PendingEvent]:
    """Write `events` (sync); return the ones that could not be written.

    `dedicated`: the caller is the audit process, whose connection does nothing else (see `_Connection`)."""
    import audit

    if not dedicated:
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
            if dedicated:
                _Connection.prepare(schema)
                audit.record_many(entries)
                _Connection.last_ok = time.monotonic()
            else:
                with schema_context(schema):
                    audit.record_many(entries)
        except Exception:
            logger.exception("Could not write %d MCP audit events for %s", len(batch), schema)
            failed.extend(batch)
    return failed


def write_with_retries(events: list[PendingEvent], *, delay: float = RETRY_DELAY, dedicated: bool = False) -> None:
    """Write `events`, retrying what fails `MAX_ATTEMPTS` times in all; then log what is given up.

    A batch is all or nothing per tenant, so retries write the failed events one by one: one event that cannot
    be written (a bug elsewhere) does not take the others down with it."""
    events = write_events(events, dedicated=dedicated)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        if not events:
            return
        time.sleep(delay * (attempt - 1))
        events = [event for single in events for event in write_events([single], dedicated=dedicated)]
    for event in events:
        logger.error("Dropping MCP audit event after %d attempts: %s %s", MAX_ATTEMPTS, event.action, event.data)


class AuditProcess:
    """The web process's audit process: started, fed batches through its stdin, acknowledged on its stdout,
    restarted when it dies (with its unacknowledged batches sent again)."""

    def __init__(self) -> None:
        # Batches sent and not yet acknowledged, as sent: (event count, encoded batch). Bytes rather than the
        # events themselves: a batch waits up to an interval and more, and thousands of live event objects
        # kept the web process's garbage collector busy (bytes are not tracked by it).
        self._unacked: dict[int, tuple[int, bytes]] = {}
        self._unacked_events = 0
        self._seq = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._closing = False
        self.gave_up = False
        self.pid: int | None = None

    def send(self, blobs: list[bytes]) -> None:
        """Send a batch of encoded events (`encode_event`)."""
        self._seq += 1
        payload = pack_batch(blobs)
        self._unacked[self._seq] = (len(blobs), payload)
        self._unacked_events += len(blobs)
        while self._unacked_events > MAX_UNACKED_EVENTS and len(self._unacked) > 1:
            seq = next(iter(self._unacked))
            count, dropped = self._unacked.pop(seq)
            self._unacked_events -= count
            for event in decode_batch(dropped):
                logger.error("Dropping MCP audit event (audit process not keeping up): %s %s", event.action, event.data)
        if self._ready:
            self._write(self._seq, payload)

    def _write(self, seq: int, payload: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"%d %d\n" % (seq, len(payload)) + payload)

    def take_unacked(self) -> list[bytes]:
        """The encoded events of every batch not acknowledged yet (they are no longer this object's to send)."""
        blobs = [blob for _, payload in self._unacked.values() for blob in unpack_batch(payload)]
        self._unacked.clear()
        self._unacked_events = 0
        return blobs

    async def _start(self) -> asyncio.subprocess.Process:
        database = settings.DATABASES["default"]["NAME"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mcp_endpoint.audit_process",
            "--database",
            str(database),  # the parent's database (under pytest: the test database, whatever DATABASE_URL says)
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(settings.BASE_DIR),
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != b"ready\n":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"the audit process did not start (exit code {proc.returncode})")
        return proc

    async def supervise(self) -> None:
        """Keep an audit process running until `close` (give up after `MAX_RESTARTS` failed starts in a row)."""
        failures = 0
        while not self._closing:
            try:
                proc = await self._start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                failures += 1
                logger.error("MCP audit process: %s (attempt %d)", exc, failures)
                if failures >= MAX_RESTARTS:
                    self.gave_up = True
                    return
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
                continue
            failures = 0
            self._proc, self.pid = proc, proc.pid
            self._ready = True
            for seq, (_, payload) in list(self._unacked.items()):  # what the previous process did not acknowledge
                self._write(seq, payload)
            if self._closing and proc.stdin is not None:
                proc.stdin.close()  # closed while it was starting: it writes the backlog, then exits
            await self._read_acks(proc)
            self._ready = False
            code = await proc.wait()
            if not self._closing:
                logger.error("MCP audit process %d exited (code %s); starting another", proc.pid, code)

    async def _read_acks(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            try:
                seq = int(line)
            except ValueError:
                logger.error("MCP audit process said %r", line[:100])
                continue
            batch = self._unacked.pop(seq, None)
            if batch is not None:
                self._unacked_events -= batch[0]

    async def close(self, supervisor: asyncio.Task[None], timeout: float) -> None:
        """End of input: the process writes what it has, acknowledges it and exits; wait for that."""
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), timeout)
        except TimeoutError:
            logger.error("MCP audit process did not finish within %.0fs; writing the rest here", timeout)
            supervisor.cancel()
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


class AuditWriter:
    """The per-process queue of MCP audit events and what writes them (entered by the root ASGI lifespan)."""

    def __init__(self, mode: str | None = None) -> None:
        self._pending: list[bytes] = []  # encoded events (`encode_event`)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._running = False
        self._mode = mode or settings.MCP_AUDIT_WRITER
        self.process: AuditProcess | None = None

    def submit(self, event: PendingEvent) -> None:
        self.submit_wire(event.to_wire())

    def submit_wire(self, wire: list[Any]) -> None:
        """Queue an event given as the wire carries it (`wire_event`): encoded now, written off the caller's path."""
        blob = encode_event(wire)
        with self._lock:
            self._pending.append(blob)
        if not self._running:
            # No lifespan (a bare test harness): write now in a thread, still off the caller's path.
            asyncio.get_running_loop().run_in_executor(None, self._write_in_thread, self._take())

    def _take(self) -> list[bytes]:
        with self._lock:
            blobs, self._pending = self._pending, []
        return blobs

    @staticmethod
    def _write_in_thread(blobs: list[bytes]) -> None:
        if blobs:
            write_with_retries([decode_event(blob) for blob in blobs])

    async def flush(self) -> None:
        """Hand what is pending to the audit process (or write it in this process's writer thread)."""
        blobs = self._take()
        if not blobs:
            return
        if self.process is not None and not self.process.gave_up:
            self.process.send(blobs)
            return
        if self.process is not None:
            blobs = self.process.take_unacked() + blobs  # it gave up: its backlog is written here
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write_in_thread, blobs)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[AuditWriter]:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-audit")
        supervisor: asyncio.Task[None] | None = None
        if self._mode == "process":
            self.process = AuditProcess()
            supervisor = asyncio.create_task(self.process.supervise())
        self._running = True
        try:
            async with background(self._loop()):
                yield self
        finally:
            self._running = False
            await self.flush()
            if self.process is not None and supervisor is not None:
                await self.process.close(supervisor, timeout=30.0)
                leftover = self.process.take_unacked()
                if leftover:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._write_in_thread, leftover)
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
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
