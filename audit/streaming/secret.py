"""A sink's secret (the webhook's HMAC key, or an OTLP receiver's Authorization header) in the tenant's Vault
subtree. The row keeps only the path and version; the value is read when a batch is sent and never logged."""

from __future__ import annotations

import uuid

from django.db import connection

from audit.models import AuditSink
from authsec_site.lib import vault

MAX_LENGTH = 4096


def new_path(sink: AuditSink) -> str:
    """A never-used path (id plus a random part: a recreated database that reuses ids never meets old versions)."""
    return vault.tenant_path(connection.schema_name, "audit-sinks", f"{sink.pk or 'new'}-{uuid.uuid4().hex[:16]}")


def write(sink: AuditSink, value: str) -> int:
    """Store `value` as the next version at the sink's path (made on first use); returns the version."""
    if not sink.secret_path:
        sink.secret_path = new_path(sink)
    return vault.tenant_kv_write(connection.schema_name, sink.secret_path, {"value": value})


def read(sink: AuditSink) -> str:
    """The version the row points at; "" when the sink has none."""
    if not sink.secret_path or not sink.secret_version:
        return ""
    data, _ = vault.tenant_kv_read(connection.schema_name, sink.secret_path, sink.secret_version)
    return str(data.get("value", ""))


def delete(schema_name: str, path: str) -> None:
    vault.tenant_kv_delete_all(schema_name, path)
