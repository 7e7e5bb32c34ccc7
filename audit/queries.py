"""Reads of the audit log for the review pages: who may review it, keyset pages, chart counts, top denied tools and
streamed exports. Views call these and only render; the writes (an export's audit event) are in
`audit.services`. Who may review: `can_review` (the Auditor dashboard role grants it, accounts.roles)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import Trunc
from django.urls import reverse
from django.utils import timezone

from audit.chain import format_time
from audit.filters import PAGE_SIZE, Cursor, apply_filters
from audit.models import AuditEvent

REVIEW_PERMISSION = "audit.review_auditevent"
CHART_DEFAULT_DAYS = 30
TOP_DENIED = 10
EXPORT_CHUNK = 2000
# Every stored field: the hashed ones (audit.chain.HASHED_FIELDS), the generated ones, id and hash.
EXPORT_FIELDS = (
    "id", "seq", "prev_hash", "created_at", "actor_type", "actor_id", "actor_label", "action", "outcome",
    "target_type", "target_id", "target_label", "application", "tool", "data", "request_id", "ip", "user_agent",
    "hash",
)  # fmt: skip


def can_review(user: Any) -> bool:
    """Staff with the auditor permission (superusers have it) may read and export the log."""
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm(REVIEW_PERMISSION))


def filtered_list_url(**filters: str) -> str:
    """The review list filtered by `filters` (e.g. actor, application, tool), in the current tenant."""
    return f"{reverse('audit:event-list')}?{urlencode(filters)}"


def review_link(user: Any, **filters: str) -> str | None:
    """`filtered_list_url(**filters)` for a user who may review the log, else None (no link is shown)."""
    return filtered_list_url(**filters) if can_review(user) else None


# --- The list: keyset pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first, with the cursors of its neighbours (None: there is none)."""

    events: list[AuditEvent]
    newer: Cursor | None
    older: Cursor | None


def event_page(
    filters: dict[str, Any], *, before: Cursor | None = None, after: Cursor | None = None, size: int = PAGE_SIZE
) -> EventPage:
    """The page of filtered events just older than `before`, just newer than `after`, or the newest.

    Keyset pagination: `WHERE (created_at, id) < cursor ORDER BY created_at DESC, id DESC LIMIT size + 1`,
    so page 1,000 costs what page 1 costs."""
    queryset = apply_filters(AuditEvent.objects.all(), filters)
    if after is not None:
        rows = list(
            queryset.filter(created_at__gte=after.created_at)
            .exclude(created_at=after.created_at, id__lte=after.id)
            .order_by("created_at", "id")[: size + 1]
        )
        has_newer = len(rows) > size
        events = rows[:size][::-1]
        return EventPage(events, Cursor.of(events[0]) if has_newer else None, Cursor.of(events[-1]) if events else None)
    if before is not None:
        queryset = queryset.filter(created_at__lte=before.created_at).exclude(
            created_at=before.created_at, id__gte=before.id
        )
    rows = list(queryset.newest_first()[: size + 1])
    events = rows[:size]
    newer = Cursor.of(events[0]) if before is not None and events else None
    older = Cursor.of(events[-1]) if len(rows) > size else None
    return EventPage(events, newer, older)


# --- The chart: events over time by outcome, and the most denied tools -------------------------------------------


@dataclass(frozen=True)
class ChartWindow:
    start: dt.datetime
    end: dt.datetime
    kind: str  # "hour", "day" or "week": the width of a bar


def chart_window(filters: dict[str, Any], now: dt.datetime | None = None) -> ChartWindow:
    """The filtered time range, or the last 30 days; bars are hours (≤ 2 days), days (≤ 92 days) or weeks."""
    end = filters.get("end") or (now or timezone.now())
    start = filters.get("start") or end - dt.timedelta(days=CHART_DEFAULT_DAYS)
    span = end - start
    kind = "hour" if span <= dt.timedelta(days=2) else "day" if span <= dt.timedelta(days=92) else "week"
    return ChartWindow(start, end, kind)


def outcome_counts(filters: dict[str, Any], window: ChartWindow) -> dict[dt.datetime, dict[str, int]]:
    """Event counts per bar and outcome in `window` ({bar start: {outcome: count}}), from one GROUP BY."""
    queryset = apply_filters(AuditEvent.objects.all(), {**filters, "start": window.start, "end": window.end})
    rows = (
        queryset.annotate(bucket=Trunc("created_at", window.kind, tzinfo=dt.UTC))
        .values("bucket", "outcome")
        .annotate(n=Count("*"))
        .order_by()
    )
    counts: dict[dt.datetime, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["bucket"], {})[row["outcome"]] = row["n"]
    return counts


def top_denied_tools(filters: dict[str, Any], window: ChartWindow, limit: int = TOP_DENIED) -> list[dict[str, Any]]:
    """The tools denied most often in `window` under the other filters: application, tool, count."""
    queryset = apply_filters(
        AuditEvent.objects.filter(outcome=AuditEvent.Outcome.DENY, tool__isnull=False),
        {**filters, "start": window.start, "end": window.end},
        exclude=("outcome",),
    )
    return list(
        queryset.values("application", "tool").annotate(n=Count("*")).order_by("-n", "application", "tool")[:limit]
    )


# --- The chain's last verification (the dashboard home) ---------------------------------------------------------

VERIFIED = "audit.chain_verified"


def last_verification() -> AuditEvent | None:
    """The newest recorded verification of this schema's chain (`manage.py verify_audit`), or None: never.

    Read through the category index: few events are in the `audit` category."""
    return AuditEvent.objects.filter(category="audit", action=VERIFIED).newest_first().first()


# --- Exports ------------------------------------------------------------------------------------------------------


def export_row(event: AuditEvent) -> dict[str, Any]:
    """An event as exported and archived: every stored field, times in canonical form."""
    row = {name: getattr(event, name) for name in EXPORT_FIELDS}
    row["created_at"] = format_time(event.created_at)
    return row


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Typed values (e.g. a failed login's email) must not run as spreadsheet formulas.
        return "'" + value
    return "" if value is None else value


def _events(filters: dict[str, Any]) -> Iterator[AuditEvent]:
    """The filtered events, oldest first, read in chunks from a server-side cursor in one snapshot."""
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        queryset = apply_filters(AuditEvent.objects.all(), filters).order_by("created_at", "id")
        yield from queryset.iterator(chunk_size=EXPORT_CHUNK)


def export_csv(filters: dict[str, Any]) -> Iterator[bytes]:
    """CSV (header row first) of the filtered events, yielded in chunks of bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for count, event in enumerate(_events(filters), start=1):
        writer.writerow([_csv_cell(value) for value in export_row(event).values()])
        if count % EXPORT_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def export_jsonl(filters: dict[str, Any]) -> Iterator[bytes]:
    """JSON Lines (one event object per line) of the filtered events, yielded in chunks of bytes."""
    lines: list[str] = []
    for event in _events(filters):
        lines.append(json.dumps(export_row(event), ensure_ascii=False, sort_keys=True))
        if len(lines) == EXPORT_CHUNK:
            yield ("\n".join(lines) + "\n").encode()
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode()


# --- A user's own activity (the self-service account page) -------------------------------------------------------

OWN_ACTIVITY = 50


def user_activity(user_id: int, limit: int = OWN_ACTIVITY) -> list[AuditEvent]:
    """The newest `limit` events a signed-in user did themselves (actor = that user), newest first."""
    own = AuditEvent.objects.for_actor(str(user_id)).filter(actor_type=AuditEvent.ActorType.USER)
    return list(own.newest_first()[:limit])
