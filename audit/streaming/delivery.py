"""Delivery of one sink: the committed events after its cursor, in chain order, a batch at a time; the cursor moves
only past a batch its receiver accepted, so every event goes out at least once and none out of order.

Failures back off exponentially (2 s, 4 s, … up to `AUDIT_SINK_RETRY_MAX`); after `AUDIT_SINK_DEAD_LETTER_AFTER`
in a row the sink is dead-lettered (audited, shown on the dashboard with its error and lag) and tried every
`AUDIT_SINK_RETRY_MAX` seconds, or at once from the dashboard, until a batch goes through again.

Nothing here runs in a request: Celery tasks (`audit.tasks`) call `deliver`. A run holds nothing the audit
writers wait for: it reads committed rows and updates its own sink row in short statements, and a session-level
advisory lock per sink only keeps two runs from sending one sink's events side by side. Every committed event is
visible in seq order without holes (a writer holds the chain lock until it commits), so reading ``seq > cursor``
never skips an event that commits later; a hole can only be events retention archived first (`audit.stream_gap`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

import audit
from audit.models import AuditCheckpoint, AuditEvent, AuditSink
from audit.recorder import Actor
from audit.streaming import otlp, secret, syslog, webhook
from audit.streaming.document import event_document, tenant_label
from audit.streaming.net import DeliveryError
from authsec_site.lib import vault

logger = logging.getLogger("authsec.audit")
STREAM_ACTOR = Actor(AuditEvent.ActorType.SYSTEM, "", "audit-stream")
STREAM_LOCK_CLASS = 0x61737472  # "astr": pg_advisory_lock(class, hashtext(<schema>/<sink id>))
BASE_DELAY = 2.0
RUN_SECONDS = 30.0  # one run's budget; a sink still behind after it is queued again


@dataclass
class DeliveryResult:
    """What one run did: ``outcome`` is caught_up, more (budget used, still behind), failed, waiting (backoff),
    busy (another run holds the sink), or skipped (no such enabled sink)."""

    sink_id: int
    outcome: str
    delivered: int = 0
    cursor_seq: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backoff(failures: int) -> float:
    """Seconds before the next try after `failures` failures in a row: doubling from 2 s, capped, with jitter
    (downwards, so the cap holds) that keeps many sinks of one down receiver from retrying in step."""
    delay = min(float(settings.AUDIT_SINK_RETRY_MAX), BASE_DELAY * 2 ** min(failures - 1, 30))
    return delay * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not a secret


@contextlib.contextmanager
def _sink_lock(sink_id: int) -> Iterator[bool]:
    """A session-level advisory lock on this schema's sink (it outlives the commits of a run); False when taken."""
    key = [STREAM_LOCK_CLASS, str(sink_id)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(current_schema() || '/' || %s))", key)
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(current_schema() || '/' || %s))", key)


def deliver(sink_id: int, *, force: bool = False, run_seconds: float = RUN_SECONDS) -> DeliveryResult:
    """Send the sink's undelivered events of the current schema until it is caught up, a batch fails, or
    `run_seconds` pass. `force` ignores the backoff (the dashboard's "Retry now")."""
    with _sink_lock(sink_id) as locked:
        if not locked:
            return DeliveryResult(sink_id, "busy")
        sink = AuditSink.objects.filter(pk=sink_id, is_enabled=True).first()
        if sink is None:
            return DeliveryResult(sink_id, "skipped")
        if not force and sink.next_attempt_at is not None and sink.next_attempt_at > timezone.now():
            return DeliveryResult(sink_id, "waiting", cursor_seq=sink.cursor_seq)
        return _run(sink, time.monotonic() + run_seconds)


def _run(sink: AuditSink, deadline: float) -> DeliveryResult:
    tenant = tenant_label()
    secret_value: str | None = None
    delivered = 0
    while True:
        events = list(AuditEvent.objects.filter(seq__gt=sink.cursor_seq).order_by("seq")[: sink.batch_size])
        if not events:
            return DeliveryResult(sink.pk, "caught_up", delivered, sink.cursor_seq)
        if events[0].seq != sink.cursor_seq + 1:
            if not _skip_archived(sink, events[0].seq):
                return DeliveryResult(sink.pk, "skipped", delivered, sink.cursor_seq)
            continue
        documents = [event_document(event, tenant) for event in events]
        try:
            if secret_value is None and sink.kind != AuditSink.Kind.SYSLOG:
                secret_value = _read_secret(sink)
            _send(sink, tenant, documents, secret_value or "")
        except DeliveryError as exc:
            return _failed(sink, str(exc), delivered)
        except Exception as exc:  # a bug must not wedge the stream silently: it counts as a failed try, logged
            logger.exception("audit stream: sink %s failed unexpectedly", sink.pk)
            return _failed(sink, f"internal error ({type(exc).__name__})", delivered)
        if not _advance(sink, events[-1].seq, len(events)):
            return DeliveryResult(sink.pk, "skipped", delivered, sink.cursor_seq)
        delivered += len(events)
        if time.monotonic() >= deadline:
            return DeliveryResult(sink.pk, "more", delivered, sink.cursor_seq)


def _read_secret(sink: AuditSink) -> str:
    try:
        return secret.read(sink)
    except vault.VaultError as exc:
        raise DeliveryError(f"the sink's secret could not be read from Vault: {exc}") from None


def _send(sink: AuditSink, tenant: str, documents: list[dict[str, Any]], secret_value: str) -> None:
    if sink.kind == AuditSink.Kind.SYSLOG:
        syslog.send(sink, documents)
    elif sink.kind == AuditSink.Kind.WEBHOOK:
        webhook.send(sink, tenant, documents, secret_value)
    elif sink.kind == AuditSink.Kind.OTLP:
        otlp.send(sink, tenant, documents, secret_value)
    else:
        raise DeliveryError(f"unknown sink kind {sink.kind!r}")


def _advance(sink: AuditSink, last_seq: int, count: int) -> bool:
    """Move the cursor past an accepted batch (only from where this run found it); clear the failure state."""
    recovering = sink.status == AuditSink.Status.DEAD_LETTER
    now = timezone.now()
    with transaction.atomic():
        moved = AuditSink.objects.filter(pk=sink.pk, cursor_seq=sink.cursor_seq).update(
            cursor_seq=last_seq,
            delivered_count=F("delivered_count") + count,
            last_delivered_at=now,
            status=AuditSink.Status.ACTIVE,
            failure_count=0,
            next_attempt_at=None,
        )
        if moved and recovering:
            audit.record(
                STREAM_ACTOR,
                "audit.sink_recovered",
                target=sink,
                data={"sink": sink.name, "kind": sink.kind, "failures": sink.failure_count, "delivered_to": last_seq},
            )
    if moved:
        sink.cursor_seq, sink.status, sink.failure_count, sink.next_attempt_at = last_seq, "active", 0, None
    return bool(moved)


def _failed(sink: AuditSink, message: str, delivered: int) -> DeliveryResult:
    """Count a failed try: back off, and dead-letter the sink (once, audited) after too many in a row."""
    failures = sink.failure_count + 1
    dead = failures >= int(settings.AUDIT_SINK_DEAD_LETTER_AFTER)
    delay = float(settings.AUDIT_SINK_RETRY_MAX) if dead else backoff(failures)
    now = timezone.now()
    message = message[:500]
    with transaction.atomic():
        AuditSink.objects.filter(pk=sink.pk).update(
            status=AuditSink.Status.DEAD_LETTER if dead else AuditSink.Status.RETRYING,
            failure_count=failures,
            last_error=message,
            last_error_at=now,
            next_attempt_at=now + dt.timedelta(seconds=delay),
        )
        if dead and sink.status != AuditSink.Status.DEAD_LETTER:
            audit.record(
                STREAM_ACTOR,
                "audit.sink_dead_lettered",
                outcome=AuditEvent.Outcome.FAILURE,
                target=sink,
                data={"sink": sink.name, "kind": sink.kind, "failures": failures, "error": message,
                      "delivered_to": sink.cursor_seq},
            )  # fmt: skip
    logger.warning("audit stream: sink %s (%s) failed %d time(s): %s", sink.pk, sink.name, failures, message)
    return DeliveryResult(sink.pk, "failed", delivered, sink.cursor_seq, message)


def _skip_archived(sink: AuditSink, first_available: int) -> bool:
    """Events after the cursor were archived by retention before they were delivered: say so in the log (and so to
    every sink, with the archive files that hold them) and go on from the first event still in the database."""
    first_missing, last_missing = sink.cursor_seq + 1, first_available - 1
    archives = AuditCheckpoint.objects.filter(seq__gte=first_missing, first_seq__lte=last_missing).order_by("seq")
    with transaction.atomic():
        moved = AuditSink.objects.filter(pk=sink.pk, cursor_seq=sink.cursor_seq).update(cursor_seq=last_missing)
        if moved:
            audit.record(
                STREAM_ACTOR,
                "audit.stream_gap",
                outcome=AuditEvent.Outcome.FAILURE,
                target=sink,
                data={
                    "sink": sink.name,
                    "first_missing": first_missing,
                    "last_missing": last_missing,
                    "archives": [Path(row.archive_file).name for row in archives],
                },
            )
    if not moved:
        return False
    logger.error("audit stream: sink %s missed events %d..%d (archived first)", sink.pk, first_missing, last_missing)
    sink.cursor_seq = last_missing
    return True
