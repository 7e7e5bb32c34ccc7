"""The dashboard's writes to SIEM sinks: where a new sink starts, its secret in Vault, "Retry now", deletion.

Changes to a sink's settings are audited by the dashboard (`AuditedAdminMixin`: ``admin.auditsink.*``, whose
snapshot shows a new secret as a new `secret_version`, never the value); "Retry now" writes `audit.sink_retried`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import connection, transaction

import audit
from audit import chain
from audit.models import AuditCheckpoint, AuditSink
from audit.streaming import secret
from authsec_site.lib import vault

logger = logging.getLogger("authsec.audit")
START_NEW, START_ALL = "new", "all"


def starting_cursor(start: str) -> int:
    """Where a new sink's stream begins: after the newest event (`START_NEW`: this sink's own creation event is
    its first), or before the oldest event still in the database (`START_ALL`)."""
    if start == START_ALL:
        checkpoint = AuditCheckpoint.objects.order_by("-seq").values_list("seq", flat=True).first()
        return int(checkpoint or 0)
    return chain.head().seq


def store_secret(*, sink: AuditSink, value: str) -> int:
    """Write the sink's secret as a new Vault version and point the row at it; returns the version."""
    version = secret.write(sink, value)
    sink.secret_version = version
    sink.save(update_fields=["secret_path", "secret_version", "updated_at"])
    return version


@transaction.atomic
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
