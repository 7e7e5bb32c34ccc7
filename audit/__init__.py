"""The audit log. Two doors:

- `audit.record(...)` (and `record_many`) writes in the caller's transaction: the call for every write path.
- `audit.enqueue(audit.queued_event(...))` queues an event for the hot paths that must not wait for an INSERT
  (the MCP endpoint, the token endpoint's issuance events); `audit.run_pipeline()` runs the writer of this
  process's queue (`audit.pipeline`), and `audit.pipeline_running()` says whether it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import AuditEvent
    from audit.pipeline.queue import enqueue, run_pipeline
    from audit.pipeline.queue import running as pipeline_running
    from audit.pipeline.wire import actor_wire as queued_actor
    from audit.pipeline.wire import wire_event as queued_event

__all__ = ["enqueue", "pipeline_running", "queued_actor", "queued_event", "record", "record_many", "run_pipeline"]

# Django imports this package before the apps are ready, and the pipeline needs them: its names are loaded on
# first use (PEP 562) and then kept here, so a hot path's `audit.enqueue` costs no more than a plain function.
_PIPELINE = {
    "enqueue": ("audit.pipeline.queue", "enqueue"),
    "run_pipeline": ("audit.pipeline.queue", "run_pipeline"),
    "pipeline_running": ("audit.pipeline.queue", "running"),
    "queued_actor": ("audit.pipeline.wire", "actor_wire"),
    "queued_event": ("audit.pipeline.wire", "wire_event"),
}


def __getattr__(name: str) -> Any:
    if name not in _PIPELINE:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    import importlib

    module, attribute = _PIPELINE[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def record(actor: Any, action: str, **kwargs: Any) -> AuditEvent:
    """Write one audit event in the current schema; see `audit.recorder.record` for the arguments."""
    from audit.recorder import record as _record

    return _record(actor, action, **kwargs)


def record_many(entries: list[Any]) -> list[dict[str, Any]]:
    """Write several events in one transaction; see `audit.recorder.record_many`."""
    from audit.recorder import record_many as _record_many

    return _record_many(entries)
