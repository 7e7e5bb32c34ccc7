"""Writes to SIEM sinks (`audit.writes.service` functions, called by the dashboard): a sink's settings with
its write-only secret in Vault, "Retry now", deletion.

A sink's snapshot in its events shows a new secret as a new `secret_version`, never the value. A dashboard save
never moves the stream's cursor or delivery state: those are the stream's own (`DELIVERY_STATE`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import connection, transaction

import audit
from audit import chain, writes
from audit.models import AuditCheckpoint, AuditSink
from audit.streaming import secret
from audit.writes import service
from authsec_site.lib import vault

logger = logging.getLogger("authsec.audit")
START_NEW, START_ALL = "new", "all"
# What only the stream writes: a save writes back their current values, never a form's stale copy.
DELIVERY_STATE = (
    "cursor_seq", "status", "failure_count", "last_error", "last_error_at", "last_delivered_at", "next_attempt_at",
    "delivered_count", "secret_path", "secret_version",
)  # fmt: skip


@service
def save_sink(
    sink: AuditSink, *, actor: Any, m2m: Any = None, secret_value: str = "", start: str = START_NEW
) -> AuditSink:
    """Create a sink (its stream starting at `start`) or change its settings; a non-empty `secret_value` is
    written to Vault as the secret's new version."""
    if sink.pk is not None:
        # The row stays locked until this commits (a delivery's update waits).
        current = AuditSink.objects.select_for_update().filter(pk=sink.pk).values(*DELIVERY_STATE).first() or {}
        for name, value in current.items():
            setattr(sink, name, value)
    else:
        sink.cursor_seq = starting_cursor(start or START_NEW)
    if secret_value:
        sink.secret_version = secret.write(sink, secret_value)  # Vault first: a row never names a missing version
    return writes.save(actor, sink, m2m=m2m, created="audit.sink_created", changed="audit.sink_changed")


@service
def delete_sink(sink: AuditSink, *, actor: Any) -> None:
    """Delete a sink; every Vault version of its secret is deleted after commit."""
    forget_secret_after_commit(sink)
    writes.delete(actor, sink, event="audit.sink_deleted")


def starting_cursor(start: str) -> int:
    """Where a new sink's stream begins: after the newest event (`START_NEW`: this sink's own creation event is
    its first), or before the oldest event still in the database (`START_ALL`)."""
    if start == START_ALL:
        checkpoint = AuditCheckpoint.objects.order_by("-seq").values_list("seq", flat=True).first()
        return int(checkpoint or 0)
    return chain.head().seq


@service
def retry_now(*, actor: Any, sink: AuditSink) -> None:
    """Clear the backoff and queue a delivery at once (after commit), audited."""
    AuditSink.objects.filter(pk=sink.pk).update(next_attempt_at=None)
    audit.record(
        actor,
        "audit.sink_retried",
        target=sink,
        data={"sink": sink.name, "status": sink.status, "failures": sink.failure_count},
    )
    schema, sink_id = connection.schema_name, sink.pk
    transaction.on_commit(lambda: _queue_delivery(schema, sink_id))


def _queue_delivery(schema_name: str, sink_id: int) -> None:
    current_app.send_task("audit.tasks.deliver_sink", args=[schema_name, sink_id], kwargs={"force": True})


def forget_secret_after_commit(sink: AuditSink) -> None:
    """When the deleting transaction commits, delete every Vault version of the sink's secret."""
    schema, path = connection.schema_name, sink.secret_path
    if path:
        transaction.on_commit(lambda: _delete_secret(schema, path))


def _delete_secret(schema_name: str, path: str) -> None:
    try:
        secret.delete(schema_name, path)
    except vault.VaultError as exc:
        logger.warning("Could not delete the Vault secret of a deleted audit sink: %s", exc)
