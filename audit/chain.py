"""The per-schema hash chain of audit events: canonical content, hashing and linking new events.

Each event stores ``hash = sha256(canonical(event))``, and its canonical content includes ``prev_hash``
(the hash of the event before it, or of the last archived event), so changing, inserting or deleting a row
breaks the chain at that point. Writers are serialised per schema by a transaction-scoped advisory lock,
so two concurrent transactions never link to the same predecessor (the chain never forks).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.utils import timezone

if TYPE_CHECKING:
    from audit.models import AuditEvent

CHAIN_VERSION = 1
GENESIS_HASH = "0" * 64
# First key of pg_advisory_xact_lock(int, int); the second is hashtext(current_schema()). "audt", "arcv".
CHAIN_LOCK_CLASS = 0x61756474
RETENTION_LOCK_CLASS = 0x61726376
# How long a writer waits for another transaction that holds the chain lock (it holds it until it commits).
LOCK_TIMEOUT_MS = 30_000

# The fields that are hashed, in the order exports list them. Generated columns (category, application,
# tool) are derived from these and are not hashed; `id` is not part of the chain either (`seq` is).
HASHED_FIELDS = (
    "seq",
    "prev_hash",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "target_label",
    "data",
    "request_id",
    "ip",
    "user_agent",
)


@dataclass(frozen=True)
class Head:
    """The newest link of a chain: where the next event attaches."""

    seq: int
    hash: str
    created_at: dt.datetime | None


def format_time(value: dt.datetime) -> str:
    """The canonical time: UTC, ISO 8601 with microseconds (``2026-11-22T10:00:00.000000+00:00``)."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def normalise_ip(value: str | None) -> str | None:
    """An IP address as Python prints it, so a value read back from Postgres hashes like the one written."""
    if not value:
        return None
    return _normal_ip(value)


@functools.lru_cache(maxsize=4096)
def _normal_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _json_safe(value: Any) -> Any:
    # Postgres jsonb stores numbers as `numeric`: a float that Python prints with an exponent (≥ 1e16)
    # comes back as an integer, and -0.0 as 0.0. Store such values the way they will be read back.
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return 0.0
        return int(value) if "e+" in repr(value) else value
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


# Encoders made once: `json.dumps` with options builds a new encoder per call, a large part of its cost here.
_DATA_ENCODER = DjangoJSONEncoder()
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_NATIVE = frozenset({str, int, bool, type(None)})


def _via_json(value: Any) -> Any:
    """Any value as it comes back from jsonb: through Django's JSON encoder (dates, UUIDs, tuples…) and back."""
    return _json_safe(json.loads(_DATA_ENCODER.encode(value)))


def _normal(value: Any) -> Any:
    # Exact types only: plain JSON (what a JSON decoder gives) is copied as it is, in one pass; anything else
    # (a str or int subclass, a tuple, a date, a non-string key) goes through the encoder like before.
    kind = type(value)
    if kind in _NATIVE:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                return _via_json(value)
            out[key] = item if type(item) in _NATIVE else _normal(item)
        return out
    if kind is list:
        return [item if type(item) in _NATIVE else _normal(item) for item in value]
    if kind is float:
        return _json_safe(value)
    return _via_json(value)


def normalise_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as plain JSON that survives a round trip through jsonb unchanged (dates become strings)."""
    return _normal(dict(data))


_encode_text = json.encoder.encode_basestring  # what the canonical encoder (ensure_ascii off) writes for a str
# The canonical content's keys in the order `sort_keys` puts them, each with what precedes it in the output.
_CANONICAL_KEYS = sorted((*HASHED_FIELDS, "v"))
_CANONICAL_PARTS = tuple(("{" if i == 0 else ",") + _encode_text(name) + ":" for i, name in enumerate(_CANONICAL_KEYS))


def _canonical_value(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _encode_text(value)
    if kind is int:
        return str(value)
    return _CANONICAL_ENCODER.encode(value)


def canonical_data(data: Mapping[str, Any]) -> str:
    """`data` as the canonical content writes it (also what is stored as the jsonb value when linking)."""
    return _CANONICAL_ENCODER.encode(data)


def canonical_content(fields: Mapping[str, Any], created_at: str | None = None, data: str | None = None) -> bytes:
    """The bytes that are hashed: the hashed fields as JSON with sorted keys, no spaces, UTF-8.

    `created_at`: the event's time already in canonical form (a batch shares one time); `data`: its data
    already encoded by `canonical_data` (linking encodes it once, for the hash and the insert). Written value
    by value in the sorted key order, which is what encoding the fields as one dict with ``sort_keys`` gives
    (a test holds the two to the same bytes), without building and sorting a dict per event."""
    out = []
    for part, name in zip(_CANONICAL_PARTS, _CANONICAL_KEYS, strict=True):
        out.append(part)
        if name == "data":
            out.append(data if data is not None else canonical_data(fields["data"]))
        elif name == "created_at":
            out.append(_encode_text(created_at or format_time(fields["created_at"])))
        elif name == "ip":
            out.append(_canonical_value(normalise_ip(fields["ip"])))
        elif name == "v":
            out.append(str(CHAIN_VERSION))
        else:
            out.append(_canonical_value(fields[name]))
    out.append("}")
    return "".join(out).encode()


def compute_hash(fields: Mapping[str, Any], created_at: str | None = None, data: str | None = None) -> str:
    return hashlib.sha256(canonical_content(fields, created_at, data)).hexdigest()


def event_fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def event_hash(event: AuditEvent) -> str:
    """The hash `event` should carry given its current field values."""
    return compute_hash(event_fields(event))


def head(using: str = "default") -> Head:
    """The last link of the current schema's chain: the newest event, else the newest archive checkpoint."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "(SELECT seq, hash, created_at FROM audit_auditevent ORDER BY seq DESC LIMIT 1)"
            " UNION ALL "
            "(SELECT seq, hash, last_created_at FROM audit_auditcheckpoint ORDER BY seq DESC LIMIT 1)"
            " ORDER BY 1 DESC LIMIT 1"
        )
        row = cursor.fetchone()
    return Head(row[0], row[1], row[2]) if row else Head(0, GENESIS_HASH, None)


def lock(using: str = "default", lock_class: int = CHAIN_LOCK_CLASS) -> None:
    """Take the current schema's chain lock until the end of the transaction (call inside one).

    Uncontended: one statement. Contended: wait at most LOCK_TIMEOUT_MS, then fail the caller's write
    (an action is never committed without its event) rather than hang behind a stuck transaction."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(current_schema()))", [lock_class])
        if cursor.fetchone()[0]:
            return
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{LOCK_TIMEOUT_MS}ms"])
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", [lock_class]
        )  # timeout raises OperationalError
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def link(event: AuditEvent, using: str | None = None) -> None:
    """Attach a new, unsaved event to the chain: lock, read the head, set seq/prev_hash/created_at/hash.

    Must run in the transaction that inserts the event, after which the lock is released at commit."""
    link_many([event], using)


def link_many(events: list[AuditEvent], using: str | None = None) -> None:
    """Attach new, unsaved events to the chain in their order (see `link_rows`)."""
    rows = [{name: getattr(event, name) for name in HASHED_FIELDS if name not in LINK_FIELDS} for event in events]
    link_rows(rows, using)
    for event, row in zip(events, rows, strict=True):
        for name in (*LINK_FIELDS, "data", "ip", "hash"):
            setattr(event, name, row[name])


# Set by linking (the rest of an event's hashed fields are given).
LINK_FIELDS = ("seq", "prev_hash", "created_at")


def link_rows(rows: list[dict[str, Any]], using: str | None = None) -> list[str]:
    """Attach new events, given as dicts of their stored fields, to the chain in their order, under one lock
    and one head read: sets ``seq``, ``prev_hash``, ``created_at`` and ``hash`` and normalises ``data`` and
    ``ip`` to what Postgres gives back. Returns each row's `data` as JSON text (`canonical_data`), for the
    insert.

    Must run in the transaction that inserts them, after which the lock is released at commit."""
    with connections[using or "default"].cursor() as cursor:
        # One round trip: the lock (held until the transaction ends), then the head read with a snapshot taken
        # after it, so under READ COMMITTED it sees the previous holder's committed event (migration 0003).
        cursor.execute("SELECT * FROM audit_lock_chain_head(%s, %s)", [CHAIN_LOCK_CLASS, f"{LOCK_TIMEOUT_MS}ms"])
        row = cursor.fetchone()
    last = Head(row[0], row[1], row[2]) if row else Head(0, GENESIS_HASH, None)
    # The time is taken inside the lock, and never before the previous event's (the clocks of several
    # app servers disagree a little), so time order is chain order.
    now = timezone.now()
    created_at = max(now, last.created_at) if last.created_at is not None else now
    seq, prev_hash, created_text = last.seq, last.hash, format_time(created_at)
    data_texts = []
    for fields in rows:
        fields["data"] = normalise_data(fields["data"] or {})
        fields["ip"] = normalise_ip(fields["ip"])
        seq += 1
        fields["seq"] = seq
        fields["prev_hash"] = prev_hash
        fields["created_at"] = created_at
        data_text = canonical_data(fields["data"])
        data_texts.append(data_text)
        fields["hash"] = prev_hash = compute_hash(fields, created_text, data_text)
    return data_texts
