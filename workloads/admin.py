"""The tenant dashboard's workload list: SPIFFE ID, current SVID (serial, expiry, status), "issue/renew now".
Registrations are written by `workloads.services.save_workload` / `delete_workload`, SVIDs by `issue_svid`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from audit.admin import ServiceAdminMixin
from workloads.files import workload_files
from workloads.models import Workload
from workloads.services import SvidIssueError, current_tenant, delete_workload, issue_svid, save_workload

_STATUS_COLOURS = {
    Workload.Status.VALID: "#2e7d32",
    Workload.Status.EXPIRING: "#b26a00",
    Workload.Status.EXPIRED: "#c62828",
    Workload.Status.FAILED: "#c62828",
    Workload.Status.NONE: "#666",
    Workload.Status.DISABLED: "#666",
}


class SvidExpiryFilter(admin.SimpleListFilter):
    """The dashboard home's "SVIDs expiring within a day" and "expired" land here (`?svid_expiry=day|expired`)."""

    title = "SVID expiry"
    parameter_name = "svid_expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("day", "expires within a day"), ("expired", "expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Workload]) -> QuerySet[Workload]:
        if self.value() == "day":
            return queryset.svid_expiring()  # type: ignore[attr-defined, no-any-return]
        if self.value() == "expired":
            return queryset.svid_expired()  # type: ignore[attr-defined, no-any-return]
        return queryset


@admin.register(Workload)
class WorkloadAdmin(ServiceAdminMixin, admin.ModelAdmin):
    save_service = staticmethod(save_workload)
    delete_service = staticmethod(delete_workload)
    list_display = ["name", "spiffe_id", "is_enabled", "svid_status", "svid_serial", "svid_not_after"]
    list_filter = ["is_enabled", SvidExpiryFilter]
    search_fields = ["name", "spiffe_path", "description", "svid_serial"]
    readonly_fields = [
        "spiffe_id",
        "svid_status",
        "svid_serial",
        "svid_not_before",
        "svid_not_after",
        "svid_issued_at",
        "files",
        "last_error",
        "last_error_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "spiffe_path", "spiffe_id", "description", "ttl_seconds", "is_enabled"]}),
        (
            "Current SVID (the private key is only in the files, never in the database)",
            {"fields": ["svid_status", "svid_serial", "svid_not_before", "svid_not_after", "svid_issued_at", "files"]},
        ),
        ("Last failure", {"fields": ["last_error", "last_error_at"]}),
    ]
    actions = ["issue_now"]

    @admin.display(description="SPIFFE ID")
    def spiffe_id(self, obj: Workload) -> str:
        return obj.spiffe_id_in(current_tenant().slug) if obj.spiffe_path else "-"

    @admin.display(description="status")
    def svid_status(self, obj: Workload) -> str:
        status = Workload.Status(obj.status())
        return format_html('<strong style="color:{}">{}</strong>', _STATUS_COLOURS[status], status.label)

    @admin.display(description="files")
    def files(self, obj: Workload) -> str:
        return str(workload_files(current_tenant().slug, obj.name).directory) if obj.name else "-"

    # One transaction per workload, not one for the selection: an SVID's files are written outside the database,
    # and a failed issuance commits its failure (last error, event) while the others go on.
    @admin.action(description="Issue / renew the SVID now", permissions=["change"])
    def issue_now(self, request: HttpRequest, queryset: QuerySet[Workload]) -> None:
        for workload in queryset:
            try:
                result = issue_svid(workload, actor=request.user)
            except SvidIssueError as exc:
                messages.error(request, f"No SVID issued for {workload.name}: {exc}")
            else:
                messages.success(
                    request,
                    f"New SVID for {workload.name}: serial {result.workload.svid_serial}, "
                    f"expires {result.workload.svid_not_after:%Y-%m-%d %H:%M:%S} UTC.",
                )
