"""The audit log: `audit.record(...)` is the one function every feature calls to write an event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import AuditEvent


def record(actor: Any, action: str, **kwargs: Any) -> AuditEvent:
    """Write one audit event in the current schema; see `audit.recorder.record` for the arguments."""
    from audit.recorder import record as _record

    return _record(actor, action, **kwargs)
