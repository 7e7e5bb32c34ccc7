"""Writes of the audit app outside the log itself: an export's audit event and the Auditors permission group.
Reads of the log are in `audit.queries`; events are written with `audit.record` and `audit.enqueue`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

import audit
from audit.models import AuditEvent

AUDITORS_GROUP = "Auditors"
# What the Auditors group may do: read the log and the audit settings. Nothing else (no RBAC at all).
AUDITOR_PERMISSIONS = (
    ("audit", "review_auditevent"),
    ("audit", "view_auditevent"),
    ("audit", "view_auditcheckpoint"),
    ("audit", "view_auditsettings"),
)


@transaction.atomic
def record_export(*, actor: Any, fmt: str, filters: dict[str, str]) -> AuditEvent:
    """Exports are audited: who exported which filtered set, in which format."""
    return audit.record(actor, "audit.exported", data={"format": fmt, "filters": filters})


@transaction.atomic
def ensure_auditor_group() -> Group:
    """The "Auditors" permission group of the current schema: read and export the log, nothing else."""
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    wanted = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in AUDITOR_PERMISSIONS]
    group.permissions.set(wanted)
    return group
