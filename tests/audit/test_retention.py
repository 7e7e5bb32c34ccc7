"""Retention: expired events are archived (gzip JSON Lines + checkpoint), then deleted; the chain still verifies."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

import audit
from audit import chain
from audit.models import AuditCheckpoint, AuditEvent, AuditLogIsAppendOnly, AuditSettings
from audit.retention import RetentionRefused, archive_expired_events, verify_archive
from audit.tasks import apply_retention, archive_schema_events
from audit.verify import verify_chain
from authsec_site.celery import app as celery_app
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def _retention(days: int) -> None:
    row = AuditSettings.load()
    AuditSettings.objects.filter(pk=row.pk).update(retention_days=days)


def _archive_up_to(event: AuditEvent, days: int = 30) -> dt.datetime:
    """The `now` at which `event` (and everything before it) is just past a `days`-day retention."""
    _retention(days)
    return event.created_at + dt.timedelta(days=days, microseconds=1)


def test_archives_expired_events_then_deletes_them_and_the_chain_still_verifies(
    in_acme: Tenant, archive_dir: Path
) -> None:
    old = [audit.record("tests", "test.old", data={"n": n}) for n in range(3)]
    kept = audit.record("tests", "test.kept")
    first_seq = AuditEvent.objects.order_by("seq").first().seq  # type: ignore[union-attr]

    result = archive_expired_events(now=_archive_up_to(old[-1]))

    assert result is not None
    assert (result.first_seq, result.last_seq, result.last_hash) == (first_seq, old[-1].seq, old[-1].hash)
    assert not AuditEvent.objects.filter(seq__lte=old[-1].seq).exists()
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.seq, checkpoint.hash, checkpoint.event_count) == (old[-1].seq, old[-1].hash, result.event_count)
    report = verify_chain()
    assert report.ok, report.summary()
    assert report.checkpoint == checkpoint and report.first_seq == kept.seq
    archived = AuditEvent.objects.get(action="audit.archived")
    assert archived.seq > kept.seq and archived.data["last_seq"] == old[-1].seq
    assert archived.data["archive_sha256"] == checkpoint.archive_sha256


def test_the_archive_is_gzip_json_lines_ending_with_its_checkpoint(in_acme: Tenant, archive_dir: Path) -> None:
    old = [audit.record("tests", "test.old", data={"n": n}) for n in range(3)]
    result = archive_expired_events(now=_archive_up_to(old[-1]))
    assert result is not None
    path = Path(result.archive_file)
    assert path.parent == archive_dir / "tenant_acme"
    assert path.name == f"tenant_acme-{result.first_seq:012d}-{result.last_seq:012d}.jsonl.gz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result.archive_sha256
    lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    events, checkpoint = lines[:-1], lines[-1]["checkpoint"]
    assert len(events) == result.event_count
    assert [e["data"] for e in events[-3:]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    for line in events:
        assert chain.compute_hash({**line, "created_at": dt.datetime.fromisoformat(line["created_at"])}) == line["hash"]
    assert checkpoint["format"] == "authsec-audit-archive/1"
    assert (checkpoint["schema"], checkpoint["last_seq"], checkpoint["last_hash"]) == (
        "tenant_acme",
        old[-1].seq,
        old[-1].hash,
    )
    assert verify_archive(path, AuditCheckpoint.objects.get()).ok
    assert not list(path.parent.glob(".*partial"))


def test_verify_audit_with_archives_checks_the_files(
    in_acme: Tenant, archive_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = audit.record("tests", "test.old")
    result = archive_expired_events(now=_archive_up_to(old))
    assert result is not None
    call_command("verify_audit", "acme", "--archives")
    out = capsys.readouterr().out
    assert f"OK: archive {Path(result.archive_file).name}" in out
    assert f"from checkpoint at event {old.seq}" in out
    # A changed archive no longer matches its checkpoint.
    Path(result.archive_file).write_bytes(gzip.compress(b'{"seq": 1}\n'))
    assert not verify_archive(Path(result.archive_file), AuditCheckpoint.objects.get()).ok


def test_a_second_run_finds_nothing_due(in_acme: Tenant, archive_dir: Path) -> None:
    old = audit.record("tests", "test.old")
    now = _archive_up_to(old)
    assert archive_expired_events(now=now) is not None
    assert archive_expired_events(now=now) is None
    assert AuditCheckpoint.objects.count() == 1


def test_archiving_everything_chains_new_events_to_the_checkpoint(in_acme: Tenant, archive_dir: Path) -> None:
    audit.record("tests", "test.old")
    _retention(1)
    first = archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=400))
    assert first is not None
    # The table now holds only the audit.archived event, which links to the checkpoint.
    [archived] = AuditEvent.objects.all()
    assert archived.prev_hash == first.last_hash and archived.seq == first.last_seq + 1
    second = archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=400))
    assert second is not None and second.first_seq == archived.seq
    [archived_again] = AuditEvent.objects.all()
    assert archived_again.prev_hash == second.last_hash
    assert AuditCheckpoint.objects.count() == 2
    assert verify_chain().ok


def test_retention_zero_keeps_everything(in_acme: Tenant, archive_dir: Path) -> None:
    audit.record("tests", "test.old")
    _retention(0)
    assert archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=10_000)) is None
    assert not archive_dir.exists()


def test_a_segment_that_does_not_verify_is_neither_archived_nor_deleted(in_acme: Tenant, archive_dir: Path) -> None:
    old = [audit.record("tests", "test.old", data={"n": n}) for n in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET data = '{\"n\": 7}' WHERE id = %s", [old[1].pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    count = AuditEvent.objects.count()
    with pytest.raises(RetentionRefused, match=f"event {old[1].seq}"):
        archive_expired_events(now=_archive_up_to(old[-1]))
    assert AuditEvent.objects.count() == count
    assert not AuditCheckpoint.objects.exists()
    assert not any(archive_dir.rglob("*.gz")) and not any(archive_dir.rglob(".*partial"))


def test_the_purge_switch_is_off_again_after_retention(in_acme: Tenant, archive_dir: Path) -> None:
    old = audit.record("tests", "test.old")
    kept = audit.record("tests", "test.kept")
    assert archive_expired_events(now=_archive_up_to(old)) is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [kept.pk])


def test_checkpoints_are_append_only(in_acme: Tenant, archive_dir: Path) -> None:
    old = audit.record("tests", "test.old")
    assert archive_expired_events(now=_archive_up_to(old)) is not None
    checkpoint = AuditCheckpoint.objects.get()
    with pytest.raises(AuditLogIsAppendOnly):
        checkpoint.delete()
    for sql in ("UPDATE audit_auditcheckpoint SET hash = 'x'", "DELETE FROM audit_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)


def test_the_task_archives_one_schema_and_is_safe_to_repeat(in_acme: Tenant, archive_dir: Path) -> None:
    old = audit.record("tests", "test.old")
    as_of = _archive_up_to(old).isoformat()
    result = archive_schema_events.apply(args=["tenant_acme", as_of]).get()
    assert result["schema"] == "tenant_acme" and result["last_seq"] == old.seq
    assert archive_schema_events.apply(args=["tenant_acme", as_of]).get() is None


def test_the_task_records_a_refusal_as_a_failure_event(in_acme: Tenant, archive_dir: Path) -> None:
    old = audit.record("tests", "test.old")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET action = 'test.forged' WHERE id = %s", [old.pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    result = archive_schema_events.apply(args=["tenant_acme", _archive_up_to(old).isoformat()]).get()
    assert "does not verify" in result["refused"]
    refusal = AuditEvent.objects.get(action="audit.archive_refused")
    assert refusal.outcome == "failure" and f"event {old.seq}" in refusal.data["reason"]


def test_beat_runs_retention_for_every_schema(db) -> None:  # type: ignore[no-untyped-def]
    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["audit-retention"]
    assert entry["task"] == "audit.tasks.apply_retention"
    assert entry["schedule"] == 24 * 3600
    # Run the per-schema tasks in this process (nothing is due: every event is younger than the retention).
    celery_app.conf.task_always_eager = True
    try:
        schemas = apply_retention.apply().get()
    finally:
        celery_app.conf.task_always_eager = False
    assert {"public", "tenant_acme", "tenant_globex"} <= set(schemas)
    assert not AuditCheckpoint.objects.exists()
