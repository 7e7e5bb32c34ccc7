"""Celery tasks of the audit log: the periodic retention run and the periodic chain verification, each fanned out to
one task per schema, and the stream to SIEMs (beat looks for sinks behind the log; one task per sink delivers,
`audit.streaming.delivery`)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django_tenants.utils import get_tenant_model, schema_context

from audit.models import AuditSink
from audit.retention import RetentionRefused, archive_expired_events, record_refusal
from audit.services import verify_and_record
from audit.streaming.delivery import deliver
from authsec_site.lib.schemas import queue_per_schema

logger = logging.getLogger("authsec.audit")
# A per-schema task that met an unreachable database runs again later (backing off up to ten minutes, five times).
RETRY_WHILE_THE_DATABASE_IS_AWAY: dict[str, Any] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


@shared_task(name="audit.tasks.apply_retention")
def apply_retention() -> list[str]:
    """Queue the retention of every schema (each tenant's and the platform's); returns the schema names."""
    return queue_per_schema(archive_schema_events)


@shared_task(name="audit.tasks.archive_schema_events", **RETRY_WHILE_THE_DATABASE_IS_AWAY)
def archive_schema_events(schema_name: str, as_of: str | None = None) -> dict[str, Any] | None:
    """Archive then delete one schema's expired events; safe to run twice (the second finds nothing due).

    `as_of` (ISO time, default now) is the moment retention is counted from, e.g. to replay a missed run."""
    now = dt.datetime.fromisoformat(as_of) if as_of else None
    with schema_context(schema_name):
        try:
            result = archive_expired_events(now=now)
        except RetentionRefused as exc:
            logger.error("audit retention refused in %s: %s", schema_name, exc)
            record_refusal(str(exc))
            return {"schema": schema_name, "refused": str(exc)}
    if result is None:
        return None
    logger.info("audit retention: %s archived %d events to %s", schema_name, result.event_count, result.archive_file)
    return result.as_dict()


@shared_task(name="audit.tasks.verify_chains")
def verify_chains() -> list[str]:
    """Queue the verification of every schema's chain (each tenant's and the platform's); returns the schema names."""
    return queue_per_schema(verify_schema_chain)


@shared_task(name="audit.tasks.verify_schema_chain", **RETRY_WHILE_THE_DATABASE_IS_AWAY)
def verify_schema_chain(schema_name: str) -> dict[str, Any]:
    """Verify one schema's chain, as `manage.py verify_audit` does, and record the result in its log
    (`audit.chain_verified`: the dashboard home shows the newest). A broken chain is also logged as an error."""
    report, problems = verify_and_record(schema_name)
    if problems:
        logger.error("audit chain of %s does not verify: %s", schema_name, "; ".join(problems))
    else:
        logger.info("audit chain of %s verified: %d events", schema_name, report.checked)
    return {"schema": schema_name, "ok": not problems, "checked": report.checked, "problems": problems}


@shared_task(name="audit.tasks.stream_due_sinks", ignore_result=True)
def stream_due_sinks() -> dict[str, list[int]]:
    """Queue a delivery for every enabled sink, in every schema, that is behind its log and not backing off.

    One short query per schema, run by beat every `AUDIT_STREAM_INTERVAL` seconds; returns what it queued."""
    queued: dict[str, list[int]] = {}
    for schema_name in get_tenant_model().objects.order_by("schema_name").values_list("schema_name", flat=True):
        with schema_context(schema_name):
            due = list(AuditSink.objects.due().values_list("pk", flat=True))
        for sink_id in due:
            deliver_sink.delay(schema_name, sink_id)
        if due:
            queued[schema_name] = due
    return queued


@shared_task(
    name="audit.tasks.deliver_sink",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
)
def deliver_sink(schema_name: str, sink_id: int, force: bool = False) -> dict[str, Any]:
    """Deliver one sink's undelivered events (safe to run twice: a second run finds the sink busy or caught up);
    queued again at once when its time budget ran out with events still waiting."""
    with schema_context(schema_name):
        result = deliver(sink_id, force=force)
    if result.outcome == "more":
        deliver_sink.delay(schema_name, sink_id)
    return result.as_dict()
