"""Read-only admin list of audit events, the mixin through which every dashboard write goes to the owning app's
service functions (`audit.writes`), the audit settings, and the SIEM sinks of the tenant dashboard (settings,
write-only secret, delivery status, lag, "Retry now")."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F, Model, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from audit.models import AuditCheckpoint, AuditEvent, AuditSettings, AuditSink
from audit.services import save_audit_settings
from audit.streaming import net, services
from audit.streaming.secret import MAX_LENGTH as SECRET_MAX_LENGTH
from authsec_site.admin_sites import platform_admin
from authsec_site.lib import vault


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
        # Without a save service an object's page is read-only; the model's change permission still allows the
        # admin's actions that change rows through services of their own (revoke, rotate, retry).
        if obj is not None and self.save_service is None:
            return False
        return super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.delete_service is not None and super().has_delete_permission(request, obj)  # type: ignore[misc]

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        """Nothing yet: the object is saved with its many-to-many values and inlines in `save_related`."""

    def save_related(self, request: HttpRequest, form: Any, formsets: list[Any], change: bool) -> None:
        with transaction.atomic(durable=True):
            self.write_form(request, form, formsets)

    def write_form(self, request: HttpRequest, form: Any, formsets: list[Any]) -> None:
        """The writes of a submitted form and its inlines, in the caller's transaction (`save_related`'s, or one a
        preview rolls back: `rbac.admin`)."""
        obj = form.instance
        m2m = _m2m_values(form)
        inlines = self.get_inline_instances(request, obj)  # type: ignore[attr-defined]
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
        "target_type", "target_id", "target_label", "pretty_data", "request_id", "trace", "ip", "user_agent",
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

    @admin.display(description="Trace")
    def trace(self, obj: AuditEvent) -> str:
        """The request's OpenTelemetry trace id, linked to the tracing UI when `AUDIT_TRACE_URL` is set."""
        if obj.trace_url:
            return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', obj.trace_url, obj.trace_id)
        return obj.trace_id or "-"

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
        if not self.has_view_or_change_permission(request):  # Django's own changelist checks this first
            raise PermissionDenied
        row = AuditSettings.load()
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:audit_auditsettings_change", args=[row.pk], current_app=self.admin_site.name
            )
        )


MIN_WEBHOOK_SECRET = 32


class AuditSinkForm(forms.ModelForm):
    secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        max_length=SECRET_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"Webhook: the HMAC-SHA256 signing key shared with the receiver (at least {MIN_WEBHOOK_SECRET} "
        "characters). OTLP: the Authorization header the collector expects, if any. Write-only: kept in Vault, "
        "never shown. Leave empty to keep the current one.",
    )
    url = forms.URLField(
        label="URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Webhook and OTLP: the https URL (OTLP: e.g. https://collector.example:4318/v1/logs).",
    )
    start = forms.ChoiceField(
        label="Start with",
        choices=[
            (services.START_NEW, "New events (from this sink's creation on)"),
            (services.START_ALL, "Every event still in the database"),
        ],
        initial=services.START_NEW,
    )

    class Meta:
        model = AuditSink
        fields = [
            "name", "kind", "is_enabled", "host", "port", "transport", "url", "otlp_encoding", "ca_certificate",
            "batch_size",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["start"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, value = data.get("kind"), data.get("secret") or ""
        if kind == AuditSink.Kind.SYSLOG:
            self._clean_syslog(data)
        elif kind in (AuditSink.Kind.WEBHOOK, AuditSink.Kind.OTLP):
            self._clean_url(data)
        if kind == AuditSink.Kind.WEBHOOK:
            if not value and not self.instance.secret_version:
                self.add_error("secret", "A webhook needs a signing secret.")
            elif value and len(value) < MIN_WEBHOOK_SECRET:
                self.add_error("secret", f"Use at least {MIN_WEBHOOK_SECRET} characters.")
        elif kind == AuditSink.Kind.SYSLOG and value:
            self.add_error("secret", "Syslog sinks use no secret (TLS authenticates the receiver).")
        if data.get("ca_certificate"):
            try:
                net.tls_context(data["ca_certificate"])
            except net.DeliveryError as exc:
                self.add_error("ca_certificate", str(exc))
        if value and not self.errors:
            # Vault is checked before anything is saved, so an outage is a form error, not a half-saved sink.
            try:
                vault.tenant_client(connection.schema_name)
            except vault.VaultError as exc:
                raise ValidationError(f"The secret could not be stored: {exc} Nothing was saved.") from None
        return data

    def _clean_syslog(self, data: dict[str, Any]) -> None:
        host, port = (data.get("host") or "").strip(), data.get("port")
        if not host:
            self.add_error("host", "A syslog sink needs the receiver's host.")
        if not port:
            self.add_error("port", "A syslog sink needs the receiver's port (e.g. 6514 for TLS).")
        if host and port:
            self._check_reachable("host", host, port)
        data["host"], data["url"] = host, ""

    def _clean_url(self, data: dict[str, Any]) -> None:
        url = data.get("url") or ""
        parts = urlsplit(url)
        if not url:
            self.add_error("url", "This kind of sink needs the receiver's URL.")
        elif parts.scheme != "https" or not parts.hostname:
            self.add_error("url", "Use an https URL: audit events never travel in clear text over HTTP.")
        elif parts.username or parts.password:
            self.add_error("url", "Put no credentials in the URL (use the secret).")
        else:
            self._check_reachable("url", parts.hostname, parts.port or 443)
        data["host"], data["port"] = "", None

    def _check_reachable(self, field: str, host: str, port: int) -> None:
        """Refuse a destination the stream would refuse (non-public addresses; see AUDIT_SINK_ALLOWED_NETWORKS)."""
        try:
            net.addresses(host, port)
        except net.DeliveryError as exc:
            self.add_error(field, f"{exc}. Sinks reach public addresses and the networks the operator allowed.")


class AuditSinkAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """A tenant's SIEM sinks: the destination, a write-only secret, and the delivery state the stream keeps."""

    save_service = staticmethod(services.save_sink)
    delete_service = staticmethod(services.delete_sink)

    form = AuditSinkForm
    list_display = ("name", "kind", "destination", "is_enabled", "status_badge", "lag", "last_delivered_at", "error")
    list_filter = ("kind", "status", "is_enabled")
    search_fields = ("name", "host", "url")
    actions = ["retry_now"]
    readonly_fields = (
        "status_badge", "lag", "cursor_seq", "delivered_count", "failure_count", "last_error", "last_error_at",
        "last_delivered_at", "next_attempt_at", "secret_state",
    )  # fmt: skip

    def get_fieldsets(self, request: HttpRequest, obj: AuditSink | None = None) -> Any:
        delivery = ["batch_size"] if obj is not None else ["batch_size", "start"]
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ["name", "kind", "is_enabled"]}),
            ("Syslog", {"fields": ["host", "port", "transport"]}),
            ("Webhook and OTLP", {"fields": ["url", "otlp_encoding"]}),
            ("TLS", {"fields": ["ca_certificate"]}),
            ("Secret (write-only: stored in Vault, never shown)", {"fields": ["secret", "secret_state"]}),
            ("Delivery", {"fields": delivery}),
        ]
        if obj is not None:
            fieldsets.append(("Delivery state", {"fields": [f for f in self.readonly_fields if f != "secret_state"]}))
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditSink]:
        """Each sink with the newest event's seq and the time of its first undelivered event (for the lag)."""
        newest = AuditEvent.objects.order_by("-seq").values("seq")[:1]
        pending = AuditEvent.objects.filter(seq=OuterRef("cursor_seq") + 1).values("created_at")[:1]
        return (
            super()
            .get_queryset(request)
            .annotate(head_seq=Subquery(newest), oldest_pending_at=Subquery(pending))
            .annotate(lag_events=F("head_seq") - F("cursor_seq"))
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: AuditSink) -> str:
        if not obj.is_enabled:
            return "Disabled"
        colour = {AuditSink.Status.DEAD_LETTER: "#ba2121", AuditSink.Status.RETRYING: "#b36b00"}.get(obj.status)
        label = obj.get_status_display()
        if colour is None:
            return label
        return format_html('<strong style="color:{}">{}</strong> ({} failed)', colour, label, obj.failure_count)

    @admin.display(description="lag")
    def lag(self, obj: AuditSink) -> str:
        behind = max(0, getattr(obj, "lag_events", None) or 0)
        if not behind:
            return "up to date"
        oldest = getattr(obj, "oldest_pending_at", None)
        since = f", oldest {timesince(oldest, timezone.now())} old" if oldest else ""
        return f"{behind} event{'s' if behind != 1 else ''}{since}"

    @admin.display(description="last error")
    def error(self, obj: AuditSink) -> str:
        if not obj.last_error or obj.status == AuditSink.Status.ACTIVE:
            return ""
        return obj.last_error[:120]

    @admin.display(description="secret")
    def secret_state(self, obj: AuditSink) -> str:
        return f"stored in Vault (version {obj.secret_version})" if obj.secret_version else "none"

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        return {
            "secret_value": form.cleaned_data.get("secret") or "",
            "start": form.cleaned_data.get("start") or services.START_NEW,
        }

    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[AuditSink]) -> None:
        for sink in queryset:
            services.retry_now(actor=request.user, sink=sink)
        self.message_user(request, f"Delivery queued for {len(queryset)} sink(s).", messages.SUCCESS)


def _register() -> None:
    for site in (admin.site, platform_admin):
        site.register(AuditEvent, AuditEventAdmin)
        site.register(AuditCheckpoint, AuditCheckpointAdmin)
        site.register(AuditSettings, AuditSettingsAdmin)
    # Sinks are a tenant's: its Vault subtree holds their secrets (the platform log has none yet).
    admin.site.register(AuditSink, AuditSinkAdmin)


_register()
