"""An audit event as every sink sends it: the exported row (which re-hashes to its `hash`), plus the tenant, the
trace id and the OCSF classification.

Documents are built from committed rows only (`delivery` reads them), so what a SIEM receives is exactly what
the chain holds: a receiver can re-hash each event (docs/audit.md, "Canonical content") and check that it links
to the one before it.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django_tenants.utils import get_tenant_model

from audit.models import AuditEvent
from audit.queries import export_row
from audit.streaming import ocsf

FORMAT = "authsec-audit-event/1"
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def tenant_label(schema_name: str | None = None) -> str:
    """The slug of the schema's tenant ("public" for the platform's own log), as SIEMs see it."""
    schema_name = schema_name or connection.schema_name
    slug = get_tenant_model().objects.filter(schema_name=schema_name).values_list("slug", flat=True).first()
    return slug or schema_name


def trace_id_of(event: AuditEvent) -> str | None:
    """The W3C trace id (32 lower-case hex digits) of the request that wrote the event, else None.

    Read from the event's own field when it has one, else from ``data["trace_id"]`` (the tracing work of issue
    24 puts it on the event); anything that is not a valid, non-zero trace id counts as none."""
    value = getattr(event, "trace_id", None) or (event.data or {}).get("trace_id")
    if isinstance(value, str) and _TRACE_ID.fullmatch(value) and value != "0" * 32:
        return value
    return None


def event_document(event: AuditEvent, tenant: str) -> dict[str, Any]:
    """The event's fields (`export_row`: actor, action, target, outcome, ip, user agent, request id, the chain's
    seq, prev_hash and hash …) with ``format``, ``tenant``, ``trace_id`` (null when none) and ``ocsf``."""
    row = export_row(event)
    return {
        "format": FORMAT,
        "tenant": tenant,
        **row,
        "trace_id": trace_id_of(event),
        "ocsf": ocsf.classify(event.action, event.outcome),
    }
