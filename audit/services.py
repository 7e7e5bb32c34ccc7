"""Writes of the audit app outside the log itself: an export's audit event.
Reads of the log are in `audit.queries`; events are written with `audit.record` and `audit.enqueue`;
who may review is the Auditor dashboard role (`accounts.roles`)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

import audit
from audit.models import AuditEvent


@transaction.atomic
def record_export(*, actor: Any, fmt: str, filters: dict[str, str]) -> AuditEvent:
    """Exports are audited: who exported which filtered set, in which format."""
    return audit.record(actor, "audit.exported", data={"format": fmt, "filters": filters})
