"""The review pages' query parameters: validated by a form, applied as one queryset, paged by keyset.

Every filter maps to an index that ends in the keyset order ``(created_at, id)`` (see `AuditEvent.Meta`),
so a filtered page is an index range scan, not a sort of the matching rows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from audit.models import AuditEvent

PAGE_SIZE = 50
TEXT_SEARCH_DAYS = 7
FILTER_NAMES = ("start", "end", "actor", "category", "application", "tool", "outcome", "q")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CURSOR = re.compile(r"^(\d{1,18})-(\d{1,18})$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"


@dataclass(frozen=True)
class Cursor:
    """A position in the (created_at, id) order; printed as ``<microseconds since 1970>-<id>``."""

    created_at: dt.datetime
    id: int

    def __str__(self) -> str:
        return f"{(self.created_at - _EPOCH) // dt.timedelta(microseconds=1)}-{self.id}"

    @classmethod
    def of(cls, event: AuditEvent) -> Cursor:
        return cls(event.created_at, event.pk)

    @classmethod
    def parse(cls, value: str) -> Cursor:
        match = _CURSOR.match(value)
        if not match:
            raise ValueError(value)
        return cls(_EPOCH + dt.timedelta(microseconds=int(match[1])), int(match[2]))


class CursorField(forms.Field):
    def to_python(self, value: Any) -> Cursor | None:
        value = str(value or "").strip()
        if not value:
            return None
        try:
            return Cursor.parse(value)
        except (ValueError, OverflowError):
            raise forms.ValidationError("This page link is not valid; start again from the newest events.")


class TimeField(forms.Field):
    """A date or a date and time, read as UTC; a bare date is that day's start (or, for `end`, its end)."""

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any) -> None:
        self.end_of_day = end_of_day
        widget = forms.TextInput(attrs={"placeholder": "YYYY-MM-DD[THH:MM]", "maxlength": 40})
        super().__init__(required=False, help_text=_TIME_HELP, widget=widget, **kwargs)

    def to_python(self, value: Any) -> dt.datetime | None:
        value = str(value or "").strip()
        if not value:
            return None
        if len(value) > 40:
            raise forms.ValidationError(f"That is not a date or time; use {_TIME_HELP}.")
        try:
            parsed = dt.datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            raise forms.ValidationError(f"“{value}” is not a date or time; use {_TIME_HELP}.")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        if self.end_of_day and _DATE_ONLY.match(value):
            parsed += dt.timedelta(days=1)
        return parsed


class AuditFilterForm(forms.Form):
    """The filters of the list, the chart and the exports (all optional), plus the page cursors."""

    start = TimeField(label="From")
    end = TimeField(label="Until", end_of_day=True)
    actor = forms.CharField(
        required=False, max_length=255, help_text="Email, client id or name (exact, any case)", label="Actor"
    )
    category = forms.RegexField(
        regex=r"^[a-z][a-z0-9_]*$",
        required=False,
        max_length=100,
        label="Category",
        help_text="The action's first part: auth, admin, rbac, tenant, mcp, …",
        error_messages={"invalid": "A category is the lower-case first part of an action, e.g. “rbac”."},
    )
    application = forms.CharField(required=False, max_length=200, label="Application")
    tool = forms.CharField(required=False, max_length=200, label="Tool")
    outcome = forms.ChoiceField(required=False, choices=[("", "any"), *AuditEvent.Outcome.choices], label="Outcome")
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Text",
        help_text=f"In action, names, request id or data; the last {TEXT_SEARCH_DAYS} days unless “From” is set",
    )
    before = CursorField(required=False, widget=forms.HiddenInput)
    after = CursorField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start >= end:
            self.add_error("end", "“Until” must be later than “From”.")
        if data.get("before") and data.get("after"):
            raise forms.ValidationError("A page link cannot go both ways; start again from the newest events.")
        return data

    def filters(self) -> dict[str, Any]:
        """The validated filters that are set (cursors excluded).

        Free text cannot use an index, so without a start it searches the last TEXT_SEARCH_DAYS only."""
        filters = {name: self.cleaned_data[name] for name in FILTER_NAMES if self.cleaned_data.get(name)}
        if "q" in filters and "start" not in filters:
            filters["start"] = (filters.get("end") or timezone.now()) - dt.timedelta(days=TEXT_SEARCH_DAYS)
        return filters

    @property
    def text_window_applied(self) -> bool:
        return bool(self.is_valid() and self.cleaned_data.get("q") and not self.cleaned_data.get("start"))


def apply_filters(queryset: Any, filters: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> Any:
    """`queryset` narrowed by `filters` (as returned by `AuditFilterForm.filters`), skipping `exclude`."""
    f = {key: value for key, value in filters.items() if key not in exclude}
    if "start" in f:
        queryset = queryset.filter(created_at__gte=f["start"])
    if "end" in f:
        queryset = queryset.filter(created_at__lt=f["end"])
    if "actor" in f:
        queryset = queryset.filter(Q(actor_label__iexact=f["actor"]) | Q(actor_id=f["actor"]))
    for name in ("category", "application", "tool", "outcome"):
        if name in f:
            queryset = queryset.filter(**{name: f[name]})
    if "q" in f:
        text = f["q"]
        queryset = queryset.annotate(data_text=Cast("data", TextField())).filter(
            Q(action__icontains=text)
            | Q(actor_label__icontains=text)
            | Q(target_label__icontains=text)
            | Q(request_id=text)
            | Q(data_text__icontains=text)
        )
    return queryset


def query_string(params: dict[str, str], **extra: Any) -> str:
    """A URL query string: the filters as typed (`params`) plus `extra` (cursors), empty values left out."""
    merged = {name: params[name] for name in FILTER_NAMES if params.get(name)}
    merged.update({key: str(value) for key, value in extra.items() if value})
    return urlencode(merged)


def typed_filters(form: AuditFilterForm) -> dict[str, str]:
    """The filters as the user typed them (for links that keep them), once the form is valid."""
    return {name: str(form.data[name]).strip() for name in FILTER_NAMES if form.cleaned_data.get(name)}
