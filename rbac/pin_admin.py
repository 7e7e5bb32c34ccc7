"""The dashboard's tool-pin pages: every pin with its state, the tenant's pinning mode, and the review page of one
tool (its pinned and changed definitions side by side, the poisoning warnings, approve or reject).

Writes go through `rbac.pins` (each an `audit.writes.service`). Viewing needs ``rbac.view_toolpin``; approving,
rejecting and changing the mode need ``rbac.change_toolpin``."""

from __future__ import annotations

import difflib
import json
from itertools import zip_longest
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from audit.admin import ServiceAdminMixin
from audit.queries import review_link
from rbac import pins
from rbac.models import ToolPin, ToolPinSettings
from rbac.pin_definitions import is_hidden

CHANGE = "rbac.change_toolpin"


def _shown(value: Any) -> list[str]:
    """A definition as the review page shows it: indented JSON, invisible and bidirectional characters written
    as ``\\uXXXX`` so they can be seen."""
    if value is None:
        return []
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if is_hidden(ch) else ch for ch in text).splitlines()


def diff_rows(before: Any, after: Any) -> list[dict[str, Any]]:
    """Side-by-side rows of two definitions: ``{tag, left, right}`` with tag equal, replace, delete or insert."""
    left, right = _shown(before), _shown(after)
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        for a, b in zip_longest(left[i1:i2], right[j1:j2]):
            rows.append({"tag": tag, "left": a, "right": b})
    return rows


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ToolPin.State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ToolPin]) -> QuerySet[ToolPin]:
        return queryset.in_state(self.value()) if self.value() in ToolPin.State.values else queryset  # type: ignore[attr-defined]


@admin.register(ToolPin)
class ToolPinAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Pins are written by registrations and reviews only: no add, edit or delete form."""

    list_display = ["tool_name", "owner", "source", "state_badge", "warning_count", "seen_at", "pinned_at"]
    list_filter = [StateFilter, "source"]
    search_fields = ["tool_name", "policy__application__slug"]
    list_select_related = ["policy__application"]
    change_list_template = "admin/rbac/toolpin/change_list.html"

    @admin.display(description="application or resource server", ordering="policy__application__slug")
    def owner(self, obj: ToolPin) -> str:
        return obj.owner_label

    @admin.display(description="state")
    def state_badge(self, obj: ToolPin) -> str:
        return format_html('<span class="pin-state pin-{}">{}</span>', obj.state, ToolPin.State(obj.state).label)

    @admin.display(description="warnings")
    def warning_count(self, obj: ToolPin) -> int:
        return len(obj.warnings or [])

    def get_urls(self) -> list[Any]:
        custom = [path("mode/", self.admin_site.admin_view(self.mode_view), name="rbac_toolpin_mode")]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {
            "pin_mode": ToolPinSettings.current_mode(),
            "pin_modes": ToolPinSettings.Mode.choices,
            "can_review": request.user.has_perm(CHANGE),
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        """The review page (GET) and its approve / reject buttons (POST)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        pin = get_object_or_404(ToolPin.objects.select_related("policy__application"), pk=object_id)
        if request.method == "POST":
            return self._review(request, pin)
        mode = ToolPinSettings.current_mode()
        may_change = request.user.has_perm(CHANGE)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Review tool {pin.tool_name}",
            "pin": pin,
            "state": ToolPin.State(pin.state),
            "mode": mode,
            "held": pin.holds(mode),
            "rows": diff_rows(pin.pinned_definition, pin.seen_definition if pin.seen_hash else pin.pinned_definition),
            "can_review": may_change and pin.state in (ToolPin.State.DRIFTED, ToolPin.State.REJECTED),
            "can_reject": may_change and pin.state == ToolPin.State.DRIFTED,
            "owner_url": self._owner_url(pin),
            "audit_url": review_link(request.user, tool=pin.tool_name),
        }
        return TemplateResponse(request, "admin/rbac/toolpin/review.html", context)

    def _owner_url(self, pin: ToolPin) -> str:
        try:
            if pin.policy_id is not None:
                return reverse("admin:rbac_toolpolicy_change", args=[pin.policy_id], current_app=self.admin_site.name)
            return reverse(
                "admin:oauth_resourceserver_change", args=[pin.resource_server_id], current_app=self.admin_site.name
            )
        except NoReverseMatch:
            return ""

    def _review(self, request: HttpRequest, pin: ToolPin) -> HttpResponse:
        if not request.user.has_perm(CHANGE):
            raise PermissionDenied
        decision = request.POST.get("decision")
        expected = request.POST.get("expected_hash", "")
        try:
            if decision == "approve":
                pins.approve_pin(pin, actor=request.user, expected_hash=expected)
                messages.success(request, f"Approved the new definition of {pin.tool_name}; it is served again.")
            elif decision == "reject":
                pins.reject_pin(pin, actor=request.user, expected_hash=expected)
                messages.warning(
                    request, f"Rejected the new definition of {pin.tool_name}; only the pinned one is served."
                )
            else:
                messages.error(request, "Choose approve or reject.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(request.path)

    @staticmethod
    def mode_view(request: HttpRequest) -> HttpResponse:
        return _set_mode(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@require_POST
def _set_mode(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(CHANGE):
        raise PermissionDenied
    try:
        changed = pins.set_pin_mode(actor=request.user, mode=request.POST.get("mode", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if changed:
            messages.success(request, f"Tool pinning mode set to {request.POST['mode']}.")
    return HttpResponseRedirect(reverse("admin:rbac_toolpin_changelist"))
