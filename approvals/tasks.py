"""Approval tasks: notify a new request's approvers, and expire requests nobody answered (beat, every minute)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django_tenants.utils import schema_context

from approvals import notify, services
from authsec_site.lib.schemas import queue_per_schema


@shared_task(
    name="approvals.tasks.notify_request",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def notify_request(schema_name: str, request_id: str) -> dict[str, object]:
    """Email and webhook for one new request (`approvals.notify`); a request already notified is left alone."""
    with schema_context(schema_name):
        return notify.notify_request(request_id)


@shared_task(name="approvals.tasks.expire_due")
def expire_due() -> list[str]:
    """Queue `expire_due_in_schema` for every schema."""
    return queue_per_schema(expire_due_in_schema)


@shared_task(
    name="approvals.tasks.expire_due_in_schema",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def expire_due_in_schema(schema_name: str) -> int:
    """Expire one schema's pending requests past their expiry (safe to run twice)."""
    if schema_name == "public":
        return 0
    with schema_context(schema_name):
        return services.expire_due()
