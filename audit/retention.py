"""Retention: archive a schema's expired events to gzip JSON Lines with a chain checkpoint, then delete them.

The archive is written and synced first; then, in one transaction, a checkpoint row records where the
archived part of the chain ends, the archived rows are deleted under the trigger's purge switch, and an
``audit.archived`` event is chained (linking to the newest remaining event, or to the checkpoint).
Verification then starts from the checkpoint. A segment whose chain does not verify is never archived or
deleted (`RetentionRefused`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

import audit
from audit import chain
from audit.chain import CHAIN_VERSION, GENESIS_HASH, RETENTION_LOCK_CLASS, compute_hash, format_time
from audit.models import AuditCheckpoint, AuditEvent, AuditSettings
from audit.queries import export_row
from audit.recorder import Actor

ARCHIVE_FORMAT = "authsec-audit-archive/1"
RETENTION_ACTOR = Actor(AuditEvent.ActorType.SYSTEM, "", "audit-retention")


class RetentionRefused(Exception):
    """The events due for archiving do not verify: they are left in place as evidence."""


@dataclass(frozen=True)
class ArchiveResult:
    schema: str
    event_count: int
    first_seq: int
    last_seq: int
    last_hash: str
    archive_file: str
    archive_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def archive_dir(schema_name: str) -> Path:
    return Path(settings.AUDIT_ARCHIVE_DIR) / schema_name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _start() -> tuple[int, str]:
    """Where the events in the database begin: after the newest checkpoint, or at the chain's genesis."""
    checkpoint = AuditCheckpoint.objects.order_by("-seq").first()
    return (checkpoint.seq, checkpoint.hash) if checkpoint else (0, GENESIS_HASH)


def _write_archive(path: Path, cutoff: dt.datetime, after_seq: int, prev_hash: str, chunk_size: int) -> dict[str, Any]:
    """Write the events older than `cutoff` that follow `after_seq`, verifying each; return the checkpoint."""
    checkpoint: dict[str, Any] = {"first_seq": after_seq + 1, "first_prev_hash": prev_hash, "event_count": 0}
    expected_seq = after_seq + 1
    rows = AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq").iterator(chunk_size=chunk_size)
    with path.open("wb") as raw, gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as archive:
        try:
            for event in rows:
                if event.created_at >= cutoff:
                    break  # time order is chain order: everything after this one is newer
                if event.seq != expected_seq or event.prev_hash != prev_hash or chain.event_hash(event) != event.hash:
                    raise RetentionRefused(
                        f"event {event.seq} (id {event.pk}) does not verify; nothing was archived or deleted"
                    )
                line = json.dumps(export_row(event), ensure_ascii=False, sort_keys=True)
                archive.write(line.encode() + b"\n")
                checkpoint.update(last_seq=event.seq, last_hash=event.hash, last_created_at=event.created_at)
                checkpoint["event_count"] += 1
                expected_seq, prev_hash = event.seq + 1, event.hash
        finally:
            rows.close()
        if checkpoint["event_count"]:
            summary = {
                "format": ARCHIVE_FORMAT,
                "chain_version": CHAIN_VERSION,
                "schema": connection.schema_name,
                **checkpoint,
                "last_created_at": format_time(checkpoint["last_created_at"]),
                "archived_at": format_time(timezone.now()),
            }
            archive.write(json.dumps({"checkpoint": summary}, sort_keys=True).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    return checkpoint


def archive_expired_events(*, now: dt.datetime | None = None, chunk_size: int = 5000) -> ArchiveResult | None:
    """Archive and delete the current schema's events older than its retention; None when none are due.

    Safe to run twice at once (a per-schema lock) or again (the next run starts after the checkpoint)."""
    retention_days = AuditSettings.load().retention_days
    if not retention_days:
        return None
    cutoff = (now or timezone.now()) - dt.timedelta(days=retention_days)
    schema = connection.schema_name
    directory = archive_dir(schema)
    final: Path | None = None
    try:
        with transaction.atomic():
            chain.lock(lock_class=RETENTION_LOCK_CLASS)
            after_seq, prev_hash = _start()
            first = AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq").values_list("created_at").first()
            if first is None or first[0] >= cutoff:
                return None
            directory.mkdir(parents=True, exist_ok=True)
            partial = directory / f".{schema}-{after_seq + 1:012d}.partial"
            point = _write_archive(partial, cutoff, after_seq, prev_hash, chunk_size)
            final = directory / f"{schema}-{point['first_seq']:012d}-{point['last_seq']:012d}.jsonl.gz"
            os.replace(partial, final)
            result = ArchiveResult(
                schema=schema,
                event_count=point["event_count"],
                first_seq=point["first_seq"],
                last_seq=point["last_seq"],
                last_hash=point["last_hash"],
                archive_file=str(final),
                archive_sha256=_sha256(final),
            )
            AuditCheckpoint.objects.create(
                seq=result.last_seq,
                hash=result.last_hash,
                last_created_at=point["last_created_at"],
                first_seq=result.first_seq,
                first_prev_hash=point["first_prev_hash"],
                event_count=result.event_count,
                archive_file=result.archive_file,
                archive_sha256=result.archive_sha256,
            )
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL authsec.audit_purge = 'on'")
                cursor.execute(
                    "DELETE FROM audit_auditevent WHERE seq BETWEEN %s AND %s", [result.first_seq, result.last_seq]
                )
                deleted = cursor.rowcount
                cursor.execute("SET LOCAL authsec.audit_purge = 'off'")
            if deleted != result.event_count:
                raise RetentionRefused(f"expected to delete {result.event_count} events, found {deleted}")
            # Last, so the chain lock (which every writer of this schema waits for) is held only briefly.
            audit.record(RETENTION_ACTOR, "audit.archived", data={**result.as_dict(), "retention_days": retention_days})
    except BaseException:
        if final is not None:
            final.unlink(missing_ok=True)  # no checkpoint refers to it: the events are still in the database
        raise
    finally:
        for leftover in directory.glob(f".{schema}-*.partial") if directory.is_dir() else ():
            leftover.unlink(missing_ok=True)
    return result


@transaction.atomic
def record_refusal(reason: str) -> AuditEvent:
    """A failed retention run is itself an event (outcome failure), written in its own transaction."""
    return audit.record(
        RETENTION_ACTOR, "audit.archive_refused", outcome=AuditEvent.Outcome.FAILURE, data={"reason": reason[:500]}
    )


# --- Reading archives back -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveReport:
    path: str
    ok: bool
    event_count: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    error: str = ""


def verify_archive(path: Path, checkpoint: AuditCheckpoint | None = None) -> ArchiveReport:
    """Re-check an archive file: each event's hash and link, its checkpoint line, and (given) the DB row."""
    count, first_seq, last_seq, prev_hash, summary = 0, None, None, None, None

    def report(error: str = "") -> ArchiveReport:
        return ArchiveReport(str(path), not error, count, first_seq, last_seq, prev_hash, error)

    if checkpoint is not None and _sha256(path) != checkpoint.archive_sha256:
        return report("the file's SHA-256 differs from the checkpoint's")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            row = json.loads(line)
            if "checkpoint" in row:
                summary = row["checkpoint"]
                continue
            if summary is not None:
                return report(f"line {number}: an event after the checkpoint line")
            if prev_hash is None:
                first_seq, prev_hash = row["seq"], row["prev_hash"]
                last_seq = row["seq"] - 1
            fields = {**row, "created_at": dt.datetime.fromisoformat(row["created_at"])}
            if row["seq"] != last_seq + 1 or row["prev_hash"] != prev_hash or compute_hash(fields) != row["hash"]:
                return report(f"line {number} (event {row['seq']}) does not verify")
            count, last_seq, prev_hash = count + 1, row["seq"], row["hash"]
    if summary is None:
        return report("no checkpoint line")
    if (summary["last_seq"], summary["last_hash"], summary["event_count"]) != (last_seq, prev_hash, count):
        return report("the checkpoint line does not match the events")
    if checkpoint is not None and (checkpoint.seq, checkpoint.hash) != (last_seq, prev_hash):
        return report("the archive does not end where the database checkpoint says")
    return report()
