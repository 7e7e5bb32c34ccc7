"""The audit log: `audit.record(...)` is the one function every feature calls to write an event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import AuditEvent


def record(actor: Any, action: str, **kwargs: Any) -> AuditEvent:
    """Write one audit event in the current schema; see `audit.recorder.record` for the arguments."""
    from audit.recorder import record as _record

    return _record(actor, action, **kwargs)


def record_many(entries: list[Any]) -> list[dict[str, Any]]:
    """Write several events in one transaction; see `audit.recorder.record_many`."""
    from audit.recorder import record_many as _record_many

    return _record_many(entries)
