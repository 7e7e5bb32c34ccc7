"""The audit pipeline (`audit.enqueue`, its queue and its audit process): batches reach the log, nothing is lost
when the process dies."""

from __future__ import annotations

import asyncio
import datetime
import marshal
import os
import signal
import threading
import time
import uuid

import pytest
from django.db import connections
from django_tenants.utils import schema_context

import audit
from audit.context import RequestContext
from audit.models import AuditEvent
from audit.pipeline import queue, supervisor
from audit.pipeline.queue import AuditQueue
from audit.pipeline.wire import QueuedEvent, decode_batch, decode_event, encode_event, mark_adopted, pack_batch
from audit.pipeline.write import write_with_retries
from audit.recorder import Actor
from audit.verify import verify_chain

pytestmark = pytest.mark.django_db


def _event(request_id: str, action: str = "mcp.tool_call", **data: object) -> QueuedEvent:
    return QueuedEvent(
        schema="tenant_acme",
        actor=Actor("user", "7", "writer@acme.test"),
        action=action,
        outcome="allow",
        data={"application": "demo", "tool": "hello", **data},
        target=("rbac.application", "", "demo"),
        context=RequestContext(request_id=request_id, ip="127.0.0.1", user_agent="tests"),
    )


def encode_batch(events: list[QueuedEvent]) -> bytes:
    """What the writer puts on the pipe for `events` (each encoded as enqueued, then packed)."""
    return pack_batch([encode_event(event.to_wire()) for event in events])


def _written(prefix: str) -> list[AuditEvent]:
    with schema_context("tenant_acme"):
        return list(AuditEvent.objects.filter(request_id__startswith=prefix).order_by("seq"))


def test_a_batch_survives_the_pipe_unchanged() -> None:
    event = _event("r1", note="naïve ✓", count=3, ratio=0.5, nested={"a": [1, None, True]}, zero="\x00")
    assert encode_event(event.to_wire())[:1] == b"M"  # the endpoint's events take the compact format
    (back,) = decode_batch(encode_batch([event]))
    assert back == event


def test_a_batch_with_a_value_marshal_cannot_hold_goes_as_json_without_losing_it() -> None:
    when = datetime.datetime(2026, 12, 3, 14, 0, tzinfo=datetime.UTC)
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    events = [_event("r1", count=1), _event("r2", when=when, id=token, odd=object.__name__)]
    assert [encode_event(event.to_wire())[:1] for event in events] == [b"M", b"J"]  # only the odd one
    first, second = decode_batch(encode_batch(events))
    assert first == events[0]
    assert second.data == {**events[1].data, "when": "2026-12-03T14:00:00Z", "id": str(token)}


def test_beyond_the_unacknowledged_limit_the_oldest_batches_are_logged_and_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "MAX_UNACKED_EVENTS", 4)
    process = supervisor.AuditProcess()  # not started: batches wait for it, as while it (re)starts
    batches = [[_event(f"b{n}-{i}", n=n) for i in range(2)] for n in range(3)]
    with caplog.at_level("ERROR", logger="audit.pipeline.supervisor"):
        for batch in batches:
            process.send([encode_event(event.to_wire()) for event in batch])
    dropped = [record.getMessage() for record in caplog.records if "not keeping up" in record.getMessage()]
    assert len(dropped) == 2 and all("'n': 0" in message for message in dropped)
    assert [decode_event(blob) for blob in process.take_unacked()] == batches[1] + batches[2]
    assert process.take_unacked() == []


def test_a_batch_or_an_event_in_no_known_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit batch format"):
        decode_batch(b'[["tenant_acme"]]')
    with pytest.raises(ValueError, match="malformed audit batch"):
        decode_batch(b"B" + marshal.dumps([b"M", 7]))
    with pytest.raises(ValueError, match="unknown audit event format"):
        decode_event(b'X[["tenant_acme"]]')


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_every_enqueued_event_is_written_once_by_shutdown(mode: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MCP_AUDIT_WRITER = mode
    prefix = uuid.uuid4().hex[:12]

    async def main() -> int | None:
        async with audit.run_pipeline():
            for i in range(300):
                audit.enqueue(_event(f"{prefix}-{i:04d}", api_token="s3cr3t").to_wire())
                if i % 50 == 0:
                    await asyncio.sleep(0.06)  # several flushes (the first ones while the process starts)
        return queue.current.process.pid if queue.current.process else None

    pid = asyncio.run(main())
    assert (pid is not None and pid != os.getpid()) == (mode == "process")
    rows = _written(prefix)
    assert [row.request_id for row in rows] == [f"{prefix}-{i:04d}" for i in range(300)]  # once each, in order
    assert all(row.data["api_token"] == "[redacted]" for row in rows)
    with schema_context("tenant_acme"):
        assert verify_chain().broken is None


def test_batches_the_audit_process_had_not_acknowledged_go_to_its_replacement() -> None:
    prefix = uuid.uuid4().hex[:12]

    async def main() -> tuple[int, int]:
        writer = AuditQueue("process")
        async with writer.run():
            process = writer.process
            assert process is not None
            deadline = time.monotonic() + 60
            while process.pid is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            first = process.pid
            for i in range(100):
                writer.put(_event(f"{prefix}-{i:04d}").to_wire())
            await writer.flush()
            os.kill(first, signal.SIGKILL)  # dies with the batch unacknowledged (or just after writing it)
            for i in range(100, 200):
                writer.put(_event(f"{prefix}-{i:04d}").to_wire())
            while process.pid == first and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            second = process.pid
        return first, second

    first, second = asyncio.run(main())
    assert second != first
    ids = [row.request_id for row in _written(prefix)]
    assert set(ids) == {f"{prefix}-{i:04d}" for i in range(200)}  # nothing lost
    assert all(ids.count(i) <= 2 for i in set(ids))  # at worst a batch committed just before the kill twice


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_an_unwritable_event_is_logged_and_given_up_without_holding_back_the_rest(capfd, caplog, mode: str) -> None:  # type: ignore[no-untyped-def]
    """In both modes: every event goes through the pipe's encoding when enqueued, so a value JSON cannot hold
    is kept as its text by the writer thread too."""
    prefix = uuid.uuid4().hex[:12]

    async def main() -> None:
        writer = AuditQueue(mode)
        async with writer.run():
            writer.put(_event(f"{prefix}-before").to_wire())
            writer.put(_event(f"{prefix}-lost", action="Not An Action").to_wire())  # refused by audit.record_many
            writer.put(_event(f"{prefix}-after", odd=object()).to_wire())  # a value JSON cannot hold: kept as text

    asyncio.run(main())
    rows = _written(prefix)
    assert [row.request_id for row in rows] == [f"{prefix}-before", f"{prefix}-after"]
    assert rows[1].data["odd"].startswith("<object object at")
    logged = capfd.readouterr().err if mode == "process" else caplog.text  # the audit process's stderr, or ours
    assert "Dropping audit event after 3 attempts: Not An Action" in logged


def test_the_audit_process_survives_losing_its_database_connection_between_batches(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """It skips the health check while its last batch committed moments ago; when the connection died in
    between, that batch fails once, is written on the retry, and nothing is lost or written twice. Batches
    of two tenants in a row each land in their own schema."""
    from django.db import connection

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")  # this test's own queries, from inside its event loop
    prefix = uuid.uuid4().hex[:12]
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        started = cursor.fetchone()[0]

    def written_everywhere() -> int:
        return len(_written(prefix)) + len(_written_in("tenant_globex", prefix))

    async def main() -> None:
        writer = AuditQueue("process")
        async with writer.run():
            writer.put(_event(f"{prefix}-a0").to_wire())
            deadline = time.monotonic() + 60
            while written_everywhere() < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with connection.cursor() as cursor:  # the backends opened since this test began: the audit process's
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_start >= %s",
                    [started],
                )
                assert cursor.fetchone()[0] == 1
            for i in range(1, 4):
                writer.put(_event(f"{prefix}-a{i}").to_wire())
                event = _event(f"{prefix}-g{i}")
                event.schema = "tenant_globex"
                writer.put(event.to_wire())

    asyncio.run(main())
    assert [row.request_id for row in _written(prefix)] == [f"{prefix}-a{i}" for i in range(4)]
    assert [row.request_id for row in _written_in("tenant_globex", prefix)] == [f"{prefix}-g{i}" for i in range(1, 4)]
    for schema in ("tenant_acme", "tenant_globex"):
        with schema_context(schema):
            assert verify_chain().broken is None


def _written_in(schema: str, prefix: str) -> list[AuditEvent]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(request_id__startswith=prefix).order_by("seq"))


def _write_in_a_thread(events: list[QueuedEvent]) -> None:
    """As the writer thread does: its own connection, committed."""

    def target() -> None:
        try:
            write_with_retries(events)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def test_an_adopted_event_already_in_the_log_is_not_written_twice_and_one_not_yet_there_is() -> None:
    """A dead process's batch may have been committed just before the kill: adopting its spool must not write
    it again, but must write what was not (same request id and action, other data: another event)."""
    prefix = uuid.uuid4().hex[:12]
    first = [_event(f"{prefix}-1", duration_ms=1.25), _event(f"{prefix}-2", duration_ms=2.5)]
    _write_in_a_thread(first)
    adopted = [*first, _event(f"{prefix}-2", duration_ms=7.0), _event(f"{prefix}-3", duration_ms=3.0)]
    _write_in_a_thread([decode_event(mark_adopted(encode_event(event.to_wire()))) for event in adopted])
    rows = _written(prefix)
    assert [(row.request_id, row.data["duration_ms"]) for row in rows] == [
        (f"{prefix}-1", 1.25),
        (f"{prefix}-2", 2.5),
        (f"{prefix}-2", 7.0),
        (f"{prefix}-3", 3.0),
    ]
    with schema_context("tenant_acme"):
        assert verify_chain().broken is None
