"""Read-only admin list of audit events, and the mixin that audits every change made in an admin."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from audit import record
from audit.models import AuditEvent
from authsec_site.admin_sites import platform_admin


class AuditedAdminMixin:
    """Writes an ``admin.<model>.added/changed/deleted`` audit event for each change made through the admin."""

    def _audit(self, request: HttpRequest, obj: Model, verb: str, message: Any) -> None:
        opts = obj._meta
        record(
            request.user,
            f"admin.{opts.model_name}.{verb}",
            target=obj,
            request=request,
            data={"model": opts.label_lower, "change": message if isinstance(message, list) else str(message or "")},
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "added", message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, obj, "changed", message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            self._audit(request, obj, "deleted", "")
        return super().log_deletions(request, queryset)  # type: ignore[misc]


class AuditEventAdmin(admin.ModelAdmin):
    """Audit events can be listed and read, never added, changed or deleted."""

    list_display = ("created_at", "action", "outcome", "actor_label", "target_label", "ip", "request_id")
    list_filter = ("outcome", "actor_type", "created_at")
    search_fields = ("action", "actor_label", "actor_id", "target_label", "target_id", "request_id")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    actions = None
    fields = (
        "created_at", "action", "outcome", "actor_type", "actor_id", "actor_label",
        "target_type", "target_id", "target_label", "pretty_data", "request_id", "ip", "user_agent",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Data")
    def pretty_data(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _register() -> None:
    admin.site.register(AuditEvent, AuditEventAdmin)
    platform_admin.register(AuditEvent, AuditEventAdmin)


_register()
