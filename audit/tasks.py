"""Celery tasks of the audit log: the periodic retention run, fanned out to one task per schema."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django_tenants.utils import schema_context

from audit.retention import RetentionRefused, archive_expired_events, record_refusal
from authsec_site.lib.schemas import queue_per_schema

logger = logging.getLogger("authsec.audit")


@shared_task(name="audit.tasks.apply_retention")
def apply_retention() -> list[str]:
    """Queue the retention of every schema (each tenant's and the platform's); returns the schema names."""
    return queue_per_schema(archive_schema_events)


@shared_task(
    name="audit.tasks.archive_schema_events",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
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
