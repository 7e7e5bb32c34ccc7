"""The wire format of the audit pipeline: events as a hot path builds them, encoded for the pipe, and back.

An event on the wire is a list ``[schema, actor, action, outcome, data, target, context]`` with the actor as
`actor_wire` gives it, the target as ``(type, id, label)`` (or None; JSON brings it back as a list) and the
context as ``[request_id, ip, user_agent, trace_id]``. Hot paths build it with `wire_event` (exported as
`audit.queued_event`) and keep an actor's wire form with `actor_wire` (`audit.queued_actor`); nothing outside
`audit.pipeline` reads the format.

The pipe carries events encoded one by one, when they are enqueued: a tag byte, then the event in `marshal`
(Python's own format for its core types: our scalars and JSON-decoded request arguments; a seventh of the cost
of JSON here, a fifth to decode), or, for an event holding any other type (a date, a UUID: only a future
producer could add one), in JSON with each odd value as Django encodes it or as its ``str()``. Encoding at
enqueue time means a pending event is one bytes object, which the garbage collector does not track: the
thousands of event lists and dicts waiting for a flush kept it busy. A batch is a tag byte and the marshalled
list of its events' bytes. The pipe runs only between a web process and the child it started, with the same code.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from audit import context as audit_context
from audit.recorder import Actor


class _WireEncoder(DjangoJSONEncoder):
    """Django's JSON types, and anything else as its ``str()``: one odd value must not lose a whole batch."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


_ENCODER = _WireEncoder(separators=(",", ":"))


@dataclass(slots=True)
class QueuedEvent:
    """One event of the pipeline, decoded: what the writer hands to `audit.record_many`."""

    schema: str
    actor: Any
    action: str
    outcome: str
    data: dict[str, Any]
    target: Any = None
    context: audit_context.RequestContext = audit_context.RequestContext()  # noqa: RUF009 - a named tuple
    adopted: bool = False  # from a dead process's spool: it may have been written already (`write`)

    def to_wire(self) -> list[Any]:
        actor = self.actor if isinstance(self.actor, Actor) else Actor("system", "", str(self.actor))
        return wire_event(self.schema, actor_wire(actor), self.action, self.outcome, self.data, self.target,
                          self.context)  # fmt: skip

    @classmethod
    def from_wire(cls, item: list[Any]) -> QueuedEvent:
        schema, actor, action, outcome, data, target, ctx = item
        return cls(
            schema=schema,
            actor=Actor(*actor),
            action=action,
            outcome=outcome,
            data=data,
            target=tuple(target) if isinstance(target, list) else target,
            context=audit_context.RequestContext(*ctx),
        )


def actor_wire(actor: Actor) -> list[Any]:
    """An actor as the wire carries it (a caller may keep it: it is encoded, never changed). Its type is a str
    enum (`AuditEvent.ActorType`): its plain value is what JSON wrote, and marshal takes only exact str."""
    return [str.__str__(actor.type), actor.id, actor.label]


def wire_event(
    schema: str,
    actor: list[Any],
    action: str,
    outcome: str,
    data: dict[str, Any],
    target: Sequence[str] | None,
    context: audit_context.RequestContext,
) -> list[Any]:
    """One event as the wire carries it: `actor` from `actor_wire`, `target` a ``(type, id, label)`` triple."""
    return [schema, actor, action, outcome, data, target, list(context)]


_MARSHAL, _JSON, _BATCH, _ADOPTED = b"M", b"J", b"B", b"A"
_MARSHAL_VERSION = 4


def encode_event(wire: list[Any]) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(wire, _MARSHAL_VERSION)
    except ValueError:  # "unmarshallable object"
        return _JSON + _ENCODER.encode(wire).encode()


def mark_adopted(blob: bytes) -> bytes:
    """An encoded event taken from a dead process's spool: its writer checks it was not written already."""
    return blob if blob[:1] == _ADOPTED else _ADOPTED + blob


def decode_event(blob: bytes) -> QueuedEvent:
    tag = blob[:1]
    if tag == _ADOPTED:
        event = decode_event(blob[1:])
        event.adopted = True
        return event
    if tag == _MARSHAL:
        item = marshal.loads(blob[1:])  # noqa: S302 - written by our own parent process, on a pipe only it holds
    elif tag == _JSON:
        item = json.loads(blob[1:])
    else:
        raise ValueError(f"unknown audit event format {tag!r}")
    return QueuedEvent.from_wire(item)


def pack_batch(blobs: list[bytes]) -> bytes:
    """A batch of encoded events, as it goes on the pipe."""
    return _BATCH + marshal.dumps(blobs, _MARSHAL_VERSION)


def unpack_batch(payload: bytes) -> list[bytes]:
    if payload[:1] != _BATCH:
        raise ValueError(f"unknown audit batch format {payload[:1]!r}")
    blobs = marshal.loads(payload[1:])  # noqa: S302 - as above
    if not isinstance(blobs, list) or not all(isinstance(blob, bytes) for blob in blobs):
        raise ValueError("malformed audit batch")
    return blobs


def decode_batch(payload: bytes) -> list[QueuedEvent]:
    return [decode_event(blob) for blob in unpack_batch(payload)]
