"""Writes of the audit app outside the log itself: an export's audit event, a chain verification's result, the
schema's audit settings.
Reads of the log are in `audit.queries`; events are written with `audit.record` and `audit.enqueue`;
who may review is the Auditor dashboard role (`accounts.roles`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django_tenants.utils import schema_context

import audit
from audit.diff import changes, snapshot
from audit.models import AuditCheckpoint, AuditEvent, AuditSettings
from audit.retention import verify_archive
from audit.verify import ChainReport, verify_chain
from audit.writes import service

VERIFIER = "audit-verify"  # the system actor of recorded verifications


@service
def record_export(*, actor: Any, fmt: str, filters: dict[str, str]) -> AuditEvent:
    """Exports are audited: who exported which filtered set, in which format."""
    return audit.record(actor, "audit.exported", data={"format": fmt, "filters": filters})


def verify_and_record(
    schema_name: str,
    *,
    archives: bool = False,
    progress: Callable[[int], None] | None = None,
    archive_ok: Callable[[str], None] | None = None,
) -> tuple[ChainReport, list[str]]:
    """Verify one schema's chain (and, with `archives`, every archive file its checkpoints name), then record the
    result in its log (`record_verification`). Returns the report and the problems found, each a `BROKEN: …` line;
    `archive_ok` hears the line of each archive that holds. `manage.py verify_audit` and beat's daily run
    (`audit.tasks.verify_schema_chain`) both go through here."""
    with schema_context(schema_name):
        report = verify_chain(progress=progress)
        problems = [] if report.ok else [report.summary()]
        if archives:
            for checkpoint in AuditCheckpoint.objects.order_by("seq"):
                path = Path(checkpoint.archive_file)
                if not path.is_file():
                    problems.append(
                        f"BROKEN: archive of events {checkpoint.first_seq}..{checkpoint.seq} missing: {path}"
                    )
                    continue
                archive = verify_archive(path, checkpoint)
                line = f"archive {path.name}: {archive.event_count} events"
                if not archive.ok:
                    problems.append(f"BROKEN: {line}: {archive.error}")
                elif archive_ok is not None:
                    archive_ok(f"OK: {line} ({archive.first_seq}..{archive.last_seq})")
        record_verification(report=report, problems=problems, archives=archives)
    return report, problems


@service
def record_verification(*, report: ChainReport, problems: list[str], archives: bool) -> AuditEvent:
    """Record that this schema's chain was verified (`manage.py verify_audit`) and what was found, so the dashboard
    home can say when it last held. Written after the scan, so it is the first event the next run checks."""
    ok = report.ok and not problems
    return audit.record(
        VERIFIER,
        "audit.chain_verified",
        outcome=AuditEvent.Outcome.SUCCESS if ok else AuditEvent.Outcome.FAILURE,
        data={
            "checked": report.checked,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "head_hash": report.head_hash,
            "archives": archives,
            "problems": [problem[:300] for problem in problems[:10]],
        },
    )


@service
def save_audit_settings(settings_row: AuditSettings, *, actor: Any, m2m: Any = None) -> AuditSettings:
    """Change this schema's audit settings (its one row, made with the defaults by `AuditSettings.load`): the
    retention period. One event with the values before and after; none when nothing changed."""
    stored = AuditSettings.objects.select_for_update().get(pk=AuditSettings.load().pk)
    settings_row.pk = stored.pk
    before = snapshot(stored)
    settings_row.save()
    after = snapshot(settings_row)
    diff = changes(before, after)
    if diff:
        audit.record(
            actor,
            "audit.settings_changed",
            target=settings_row,
            data={"before": before, "after": after, "changes": diff},
        )
    return settings_row
