"""The audit review pages at /t/<tenant>/audit/: the filtered list with its chart, an event, the exports.

Staff with the `audit.review_auditevent` permission only (the Auditors group has it); anonymous visitors
are sent to the dashboard login, everyone else gets 403. The views validate, read with `audit.queries`, render.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from audit import queries, services
from audit.charts import build_chart
from audit.filters import TEXT_SEARCH_DAYS, AuditFilterForm, query_string, typed_filters
from audit.models import AuditEvent, AuditSettings
from audit.verify import verify_event

EXPORTS = {
    "csv": (queries.export_csv, "text/csv; charset=utf-8"),
    "jsonl": (queries.export_jsonl, "application/jsonl; charset=utf-8"),
}


def auditor_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: to the dashboard login. Logged in without the auditor permission: 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not queries.can_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


@auditor_required
def event_list(request: HttpRequest) -> HttpResponse:
    """Filtered events, newest first, one keyset page at a time, with the chart and the top denied tools."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        context = _context(request, "Audit log", form=form, invalid=True)
        return render(request, "audit/event_list.html", context, status=400)
    filters = form.filters()
    typed = typed_filters(form)
    page = queries.event_page(filters, before=form.cleaned_data["before"], after=form.cleaned_data["after"])
    window = queries.chart_window(filters)
    chart = build_chart(window, queries.outcome_counts(filters, window))
    top_denied = queries.top_denied_tools(filters, window)
    for row in top_denied:
        row["qs"] = query_string(
            {**typed, "outcome": "deny", "application": row["application"] or "", "tool": row["tool"]}
        )
    context = _context(
        request,
        "Audit log",
        form=form,
        page=page,
        chart=chart,
        window=window,
        top_denied=top_denied,
        filters_qs=query_string(typed),
        newer_qs=query_string(typed, after=page.newer) if page.newer else None,
        older_qs=query_string(typed, before=page.older) if page.older else None,
        is_first_page=not (form.cleaned_data["before"] or form.cleaned_data["after"]),
        retention=AuditSettings.load(),
        typed=typed,
        text_days=TEXT_SEARCH_DAYS,
    )
    return render(request, "audit/event_list.html", context)


@auditor_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    """One event: every field, its data, its place in the chain and whether the chain holds there."""
    event = get_object_or_404(AuditEvent, pk=event_id)
    neighbours = dict(AuditEvent.objects.filter(seq__in=[event.seq - 1, event.seq + 1]).values_list("seq", "id"))
    context = _context(
        request,
        f"Audit event {event.seq}",
        event=event,
        status=verify_event(event),
        data_json=json.dumps(event.data, indent=2, sort_keys=True, ensure_ascii=False),
        previous_id=neighbours.get(event.seq - 1),
        next_id=neighbours.get(event.seq + 1),
        back_qs=request.GET.urlencode(),
    )
    return render(request, "audit/event_detail.html", context)


async def _in_request_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Under ASGI, pull each chunk in the request's own thread (same database connection and transaction);
    # a sync iterator would otherwise be read into memory whole before the first byte is sent.
    pull = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    try:
        while (chunk := await pull()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()  # type: ignore[attr-defined]


@auditor_required
def event_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The filtered events (every page, oldest first) as a streamed CSV or JSON Lines download."""
    if fmt not in EXPORTS:
        raise Http404("Unknown export format.")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        context = _context(request, "Audit log", form=form, invalid=True)
        return render(request, "audit/event_list.html", context, status=400)
    filters = form.filters()
    services.record_export(actor=request.user, fmt=fmt, filters=typed_filters(form))
    produce, content_type = EXPORTS[fmt]
    chunks = produce(filters)
    body = _in_request_thread(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(body, content_type=content_type)
    tenant = getattr(request, "tenant", None)
    name = f"audit-{getattr(tenant, 'slug', 'log')}-{timezone.now():%Y%m%dT%H%M%SZ}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
