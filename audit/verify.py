"""Verification of a schema's hash chain: the whole chain (`verify_chain`) or one event (`verify_event`).

The chain starts at the newest archive checkpoint (or at the genesis hash when nothing was archived).
Every event must follow the one before it (`seq` + 1), link to its hash (`prev_hash`), and carry the hash
of its own canonical content; the first event that does not is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction

from audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_hash, event_hash
from audit.models import AuditCheckpoint, AuditEvent


@dataclass(frozen=True)
class Break:
    """The first place where the chain does not hold."""

    seq: int
    event_id: int | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying a schema's chain: OK, or the first break."""

    schema: str
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    checkpoint: AuditCheckpoint | None
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def summary(self) -> str:
        start = f"from checkpoint at event {self.checkpoint.seq}" if self.checkpoint else "from the genesis hash"
        if self.broken is not None:
            where = f"event {self.broken.seq}" + (f" (id {self.broken.event_id})" if self.broken.event_id else "")
            return f"BROKEN: schema {self.schema}: first broken {where}: {self.broken.reason}"
        span = f"events {self.first_seq}..{self.last_seq}" if self.checked else "no events"
        return (
            f"OK: schema {self.schema}: {self.checked} events verified ({span}), {start}; "
            f"head {self.last_seq or (self.checkpoint.seq if self.checkpoint else 0)} hash {self.head_hash}"
        )


def _checkpoint_break(checkpoints: list[AuditCheckpoint]) -> Break | None:
    """Consecutive checkpoints must continue each other (no archived range missing or overlapping)."""
    expected_seq, expected_hash = 1, GENESIS_HASH
    for checkpoint in checkpoints:
        if checkpoint.first_seq != expected_seq or checkpoint.first_prev_hash != expected_hash:
            return Break(
                checkpoint.first_seq,
                None,
                f"archive checkpoint at {checkpoint.seq} does not continue the one before it",
            )
        expected_seq, expected_hash = checkpoint.seq + 1, checkpoint.hash
    return None


def verify_chain(*, chunk_size: int = 5000, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Verify the current schema's chain from its newest checkpoint to its newest event."""
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction:
            # One snapshot for checkpoints and events, however long the scan takes.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _verify(chunk_size, progress)


def _verify(chunk_size: int, progress: Callable[[int], None] | None) -> ChainReport:
    checkpoints = list(AuditCheckpoint.objects.order_by("seq"))
    checkpoint = checkpoints[-1] if checkpoints else None
    expected_seq = checkpoint.seq + 1 if checkpoint else 1
    expected_prev = checkpoint.hash if checkpoint else GENESIS_HASH
    report = {"checked": 0, "first_seq": None, "last_seq": None}

    def done(broken: Break | None) -> ChainReport:
        return ChainReport(
            schema=connection.schema_name,
            head_hash=expected_prev,
            checkpoint=checkpoint,
            broken=broken,
            **report,  # type: ignore[arg-type]
        )

    broken = _checkpoint_break(checkpoints)
    if broken is not None:
        return done(broken)
    rows = AuditEvent.objects.order_by("seq").values_list("id", "hash", *HASHED_FIELDS).iterator(chunk_size=chunk_size)
    for row in rows:
        event_id, stored_hash, fields = row[0], row[1], dict(zip(HASHED_FIELDS, row[2:], strict=True))
        seq = fields["seq"]
        if seq != expected_seq:
            reason = (
                f"events {expected_seq}..{seq - 1} are missing (deleted without an archive checkpoint)"
                if seq > expected_seq
                else f"event is older than the archive checkpoint at {expected_seq - 1} (should have been purged)"
            )
            return done(Break(seq, event_id, reason))
        if fields["prev_hash"] != expected_prev:
            return done(Break(seq, event_id, "does not link to the previous event (prev_hash differs from its hash)"))
        if compute_hash(fields) != stored_hash:
            return done(Break(seq, event_id, "content changed (stored hash differs from the hash of the content)"))
        report["checked"] += 1  # type: ignore[operator]
        report["first_seq"] = report["first_seq"] or seq
        report["last_seq"] = seq
        expected_seq, expected_prev = seq + 1, stored_hash
        if progress is not None and report["checked"] % 100_000 == 0:  # type: ignore[operator]
            progress(report["checked"])  # type: ignore[arg-type]
    return done(None)


@dataclass
class EventStatus:
    """One event's place in the chain, as the detail page shows it."""

    content_ok: bool
    link_ok: bool
    next_ok: bool | None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.content_ok and self.link_ok and self.next_ok is not False


def verify_event(event: AuditEvent) -> EventStatus:
    """Check one event: its own hash, its link to the event before it, and the next event's link to it."""
    status = EventStatus(content_ok=event_hash(event) == event.hash, link_ok=False, next_ok=None)
    if not status.content_ok:
        status.notes.append("The content was changed after it was written: its hash does not match.")
    previous = AuditEvent.objects.filter(seq=event.seq - 1).values_list("hash", flat=True).first()
    if previous is None:
        checkpoint = AuditCheckpoint.objects.filter(seq=event.seq - 1).first()
        if checkpoint is not None:
            previous = checkpoint.hash
            status.notes.append(f"The events before it are archived (checkpoint at event {checkpoint.seq}).")
        elif event.seq == 1:
            previous = GENESIS_HASH
            status.notes.append("It is the first event of the chain.")
        else:
            status.notes.append(f"Event {event.seq - 1} is missing: it was deleted without an archive checkpoint.")
    status.link_ok = previous is not None and previous == event.prev_hash
    if previous is not None and not status.link_ok:
        status.notes.append(f"It does not link to event {event.seq - 1}: that event's hash differs from prev_hash.")
    following = AuditEvent.objects.filter(seq=event.seq + 1).values_list("prev_hash", flat=True).first()
    if following is not None:
        status.next_ok = following == event.hash
        if not status.next_ok:
            status.notes.append(f"Event {event.seq + 1} does not link to this one: this event's hash was rewritten.")
    return status
