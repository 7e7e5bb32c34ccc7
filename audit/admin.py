"""Read-only admin list of audit events, and the mixin through which every dashboard write goes to the owning
app's service functions (`audit.writes`)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from audit.models import AuditCheckpoint, AuditEvent, AuditSettings
from audit.services import save_audit_settings
from authsec_site.admin_sites import platform_admin


class ServiceAdminMixin:
    """A ModelAdmin whose every write goes through the model's service functions, so that a dashboard change
    writes the same rows and the same audit event as the management API and the code.

    - `save_service(obj, *, actor, m2m)` saves an added or changed object with its many-to-many values;
      `delete_service(obj, *, actor)` deletes one (both `audit.writes.service` functions, declared with
      `staticmethod`). An admin without `save_service` cannot add or change; one without `delete_service`
      cannot delete.
    - A form submission is one transaction: the object's service call and, for each inline row added,
      changed or deleted, the inline's own `save_service` / `delete_service` (declared on the inline class,
      called with the row's many-to-many values), all joined (`.nested`) in one durable block. Form fields
      that are not the model's reach `save_service` through `service_arguments` (a write-only secret, the
      dashboard roles). "Delete selected" deletes every row in one.
    - An admin with neither is a read-only page; its bulk actions call one service function each.
    - Django's own change history (LogEntry) is still written by the admin, after the change.
    """

    save_service: Any = None
    delete_service: Any = None

    # Django wraps these two views in a transaction of its own; here the service call is the transaction.
    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return self._changeform_view(request, object_id, form_url, extra_context)  # type: ignore[attr-defined]

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.save_service is not None and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.save_service is not None and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.delete_service is not None and super().has_delete_permission(request, obj)  # type: ignore[misc]

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        """Nothing yet: the object is saved with its many-to-many values and inlines in `save_related`."""

    def save_related(self, request: HttpRequest, form: Any, formsets: list[Any], change: bool) -> None:
        obj = form.instance
        m2m = _m2m_values(form)
        inlines = self.get_inline_instances(request, obj)  # type: ignore[attr-defined]
        with transaction.atomic(durable=True):
            self.save_service.nested(obj, actor=request.user, m2m=m2m, **self.service_arguments(request, form))
            for formset in formsets:
                formset.save(commit=False)  # fills new_objects, changed_objects and deleted_objects; writes nothing
                if formset.new_objects or formset.changed_objects or formset.deleted_objects:
                    self._save_inline(request, _inline_of(formset, inlines), formset)
            self.save_extra(request, form)

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        """Keyword arguments of `save_service` beyond the object, actor and many-to-many values, taken from
        form fields that are not the model's (a write-only secret, the dashboard roles); none by default."""
        return {}

    def save_extra(self, request: HttpRequest, form: Any) -> None:
        """Writes of form fields beyond the model's, in the same transaction (each through a service's
        ``.nested``); none by default."""

    @staticmethod
    def _save_inline(request: HttpRequest, inline: Any, formset: Any) -> None:
        forms = {id(form.instance): form for form in formset.forms}
        for obj in formset.deleted_objects:
            inline.delete_service.nested(obj, actor=request.user)
        for obj in [*formset.new_objects, *(obj for obj, _fields in formset.changed_objects)]:
            inline.save_service.nested(obj, actor=request.user, m2m=_m2m_values(forms[id(obj)]))

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self.delete_service(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic(durable=True):
            for obj in queryset:
                self.delete_service.nested(obj, actor=request.user)


def _m2m_values(form: Any) -> dict[str, Any]:
    """The many-to-many values a model form was given (only the fields it shows)."""
    return {
        field.name: form.cleaned_data[field.name]
        for field in form.instance._meta.many_to_many
        if field.name in form.cleaned_data and field.name in form.fields
    }


def _inline_of(formset: Any, inlines: list[Any]) -> Any:
    """The inline admin that made `formset` (matched by model and foreign key)."""
    for inline in inlines:
        if inline.model is formset.model and inline.fk_name in (None, formset.fk.name):
            if getattr(inline, "save_service", None) is None or getattr(inline, "delete_service", None) is None:
                raise ImproperlyConfigured(f"{type(inline).__name__} declares no save_service / delete_service")
            return inline
    raise ImproperlyConfigured(f"no inline of {formset.model.__name__} among {inlines}")


class AuditEventAdmin(admin.ModelAdmin):
    """Audit events can be listed and read, never added, changed or deleted."""

    list_display = ("created_at", "seq", "action", "outcome", "actor_label", "target_label", "ip", "request_id")
    list_filter = ("outcome", "actor_type", "created_at")
    search_fields = ("action", "actor_label", "actor_id", "target_label", "target_id", "request_id")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    actions = None
    fields = (
        "created_at", "action", "outcome", "actor_type", "actor_id", "actor_label",
        "target_type", "target_id", "target_label", "pretty_data", "request_id", "ip", "user_agent",
        "seq", "prev_hash", "hash",
    )  # fmt: skip
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The tenant dashboards link to the review pages (filters, chart, exports, chain status).
        from audit.queries import can_review

        try:
            review_url = reverse("audit:event-list") if can_review(request.user) else None
        except NoReverseMatch:  # the platform admin has no review pages
            review_url = None
        return super().changelist_view(request, {**(extra_context or {}), "review_url": review_url})

    @admin.display(description="Data")
    def pretty_data(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditCheckpointAdmin(AuditEventAdmin):
    """Where archived parts of the chain end; written by retention only."""

    list_display = ("created_at", "first_seq", "seq", "event_count", "archive_file")
    list_filter = ()
    search_fields = ("archive_file", "hash")
    date_hierarchy = None
    fields = (
        "created_at", "first_seq", "first_prev_hash", "seq", "hash", "last_created_at", "event_count",
        "archive_file", "archive_sha256",
    )  # fmt: skip
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return admin.ModelAdmin.changelist_view(self, request, extra_context)


class AuditSettingsAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """One row per schema: the retention period (`audit.services.save_audit_settings`). The list opens the row
    itself; it cannot be added or deleted."""

    save_service = staticmethod(save_audit_settings)
    fields = ("retention_days", "updated_at")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = AuditSettings.load()
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:audit_auditsettings_change", args=[row.pk], current_app=self.admin_site.name
            )
        )


def _register() -> None:
    for site in (admin.site, platform_admin):
        site.register(AuditEvent, AuditEventAdmin)
        site.register(AuditCheckpoint, AuditCheckpointAdmin)
        site.register(AuditSettings, AuditSettingsAdmin)


_register()
