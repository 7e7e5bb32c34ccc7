"""`record()`: write one audit event in the current schema, inside the caller's transaction.

The event is written with the caller's transaction, so a write that rolls back leaves no event claiming
it happened, and an event can never be lost for a write that committed. Saving it links it into the
schema's hash chain (`audit.chain.link`, called by `AuditEvent.save`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import HttpRequest

from audit import context
from audit.models import AuditEvent
from authsec_site.lib.client_ip import request_ip

REDACTED = "[redacted]"
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|private_?key|api_?key|authorization|credential|cookie", re.I
)
# Keys that name a secret but do not hold one: ids, kinds, counts, versions, times.
_HARMLESS_SUFFIX = re.compile(r"(_id|_ids|_type|_count|_version|_at|_name|_path|_changed)$", re.I)


@dataclass(frozen=True)
class Actor:
    """An actor that is not a user row: an OAuth client, a Celery task, the command line."""

    type: str
    id: str = ""
    label: str = ""


SYSTEM = Actor(AuditEvent.ActorType.SYSTEM, "", "system")


_sensitive_keys: dict[str, bool] = {}


def _is_sensitive(key: str) -> bool:
    """Whether a data key names a secret (cached: events repeat the same few keys)."""
    known = _sensitive_keys.get(key)
    if known is None:
        if len(_sensitive_keys) > 4096:
            _sensitive_keys.clear()
        known = _sensitive_keys[key] = bool(_SENSITIVE_KEY.search(key)) and not _HARMLESS_SUFFIX.search(key)
    return known


_SCALARS = frozenset({str, int, float, bool, type(None)})


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, at any depth, so no secret reaches the log."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {
            str(key): (REDACTED if _is_sensitive(str(key)) and item not in (None, "") else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def _actor_fields(actor: Any) -> tuple[str, str, str]:
    if actor is None:
        return SYSTEM.type, SYSTEM.id, SYSTEM.label
    if isinstance(actor, Actor):
        return actor.type, actor.id, actor.label
    if isinstance(actor, AnonymousUser):
        return AuditEvent.ActorType.ANONYMOUS, "", "anonymous"
    if isinstance(actor, AbstractBaseUser):
        return AuditEvent.ActorType.USER, str(actor.pk), actor.get_username()
    if isinstance(actor, str):
        return AuditEvent.ActorType.SYSTEM, "", actor
    raise TypeError(f"Unsupported audit actor: {type(actor).__name__}")


def as_actor(actor: Any) -> Actor:
    """`actor` (anything `record` takes) as an `Actor`: what `audit.queued_actor` encodes."""
    return actor if isinstance(actor, Actor) else Actor(*_actor_fields(actor))


def _target_fields(target: Any) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk), str(target)
    if isinstance(target, tuple) and len(target) == 3:
        return tuple(str(part) for part in target)  # type: ignore[return-value]
    if isinstance(target, str):
        return "", "", target
    raise TypeError(f"Unsupported audit target: {type(target).__name__}")


def _client_ip(request: HttpRequest) -> str | None:
    return request_ip(request)


@dataclass(frozen=True)
class Entry:
    """One event for `record_many`: the arguments of `record` (the request context is given explicitly)."""

    actor: Any
    action: str
    target: Any = None
    data: Mapping[str, Any] | None = None
    outcome: str = AuditEvent.Outcome.SUCCESS
    context: context.RequestContext | None = None


_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_valid_actions: set[str] = set()
_OUTCOMES = frozenset(AuditEvent.Outcome.values)


def _fields(
    actor: Any,
    action: str,
    target: Any,
    data: Mapping[str, Any] | None,
    outcome: str,
    request: HttpRequest | None,
    ctx: context.RequestContext,
) -> dict[str, Any]:
    """The stored fields of a new event, validated and redacted (not yet linked into the chain)."""
    if action not in _valid_actions:
        if not action or not _ACTION.fullmatch(action):
            raise ValueError(f'Audit actions are dotted lower-case names like "tenant.created", got {action!r}')
        _valid_actions.add(action)
    if outcome not in _OUTCOMES:
        raise ValueError(f"Unknown audit outcome {outcome!r}")
    actor_type, actor_id, actor_label = _actor_fields(actor)
    target_type, target_id, target_label = _target_fields(target)
    ip = _client_ip(request) if request is not None else ctx.ip
    user_agent = request.META.get("HTTP_USER_AGENT", "") if request is not None else ctx.user_agent
    data = redact(dict(data or {}))
    if ctx.trace_id and "trace_id" not in data:
        # In the data (so hashed with it) rather than a column of its own: no change to the chain's format.
        data["trace_id"] = ctx.trace_id
    return {
        "actor_type": actor_type,
        "actor_id": actor_id[:128],
        "actor_label": actor_label[:255],
        "action": action,
        "outcome": outcome,
        "target_type": target_type[:100],
        "target_id": target_id[:128],
        "target_label": target_label[:255],
        "data": data,
        "request_id": getattr(request, "request_id", "") or ctx.request_id,
        "ip": ip,
        "user_agent": user_agent[:255],
    }


def stored_fields(
    actor: Any, action: str, target: Any, data: Mapping[str, Any] | None, outcome: str, ctx: context.RequestContext
) -> dict[str, Any]:
    """The fields `record_many` would store for an event (validated, redacted; not linked into the chain)."""
    return _fields(actor, action, target, data, outcome, None, ctx)


def record(
    actor: Any,
    action: str,
    *,
    target: Any = None,
    data: Mapping[str, Any] | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Write one audit event.

    actor: a user, an `Actor`, a string naming a system actor, or None for the system.
    action: a dotted name such as ``"tenant.created"``.
    target: a model instance, a ``(type, id, label)`` tuple, or a label.
    data: JSON-serialisable details; values under secret-looking keys are redacted.
    Request id and client IP come from the current request context (or from `request` when given), and so does
    the trace id (kept as ``data["trace_id"]``) when tracing is on.
    """
    event = AuditEvent(**_fields(actor, action, target, data, outcome, request, context.current()))
    event.save()
    return event


def record_many(entries: list[Entry]) -> list[dict[str, Any]]:
    """Write several events of the current schema in one transaction: one chain lock, one COPY.

    The same rules as `record` (validation, redaction, the hash chain); for writers that batch events, such
    as the audit pipeline's (`audit.pipeline.write`). Returns the stored fields of each event (with ``seq`` and
    ``hash``). All or nothing: an invalid entry raises before anything is written."""
    default = context.current()
    rows = [_fields(e.actor, e.action, e.target, e.data, e.outcome, None, e.context or default) for e in entries]
    if rows:
        AuditEvent.objects.insert_linked(rows)
    return rows
