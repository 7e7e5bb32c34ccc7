"""Services in the tenant dashboard: metadata, access requirement, rotation policy, write-only secrets.

Secret fields are password inputs that are never rendered back; filling one writes a new Vault version
(merged over the current credentials). The change page shows the version history without values, and
the "rotate now" action runs the service's rotator. Saves and deletes are `services.save_service` /
`services.delete_service`: a service and its new secret version are one transaction."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from audit.admin import ServiceAdminMixin
from authsec_site.lib import vault
from services import services
from services.models import Service

SECRET_FIELDS = ("access_token", "api_key", "username", "password", "refresh_token", "client_id", "client_secret")


def _secret_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        max_length=services.MAX_SECRET_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class ServiceForm(forms.ModelForm):
    access_token = _secret_field("Access token", "Bearer and OAuth 2.0 services. Leave empty to keep the current one.")
    api_key = _secret_field("API key", "API-key services. Leave empty to keep the current one.")
    username = _secret_field("Username", "Basic-auth and database services.")
    password = _secret_field("Password", "Basic-auth and database services.")
    refresh_token = _secret_field("Refresh token", "OAuth 2.0 services rotated by refresh.")
    client_id = _secret_field("OAuth client id", "OAuth 2.0 services rotated by refresh.")
    client_secret = _secret_field("OAuth client secret", "Confidential OAuth 2.0 clients only.")
    base_url = forms.URLField(label="Base URL", required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = Service
        fields = [
            "name",
            "service_type",
            "auth_type",
            "base_url",
            "description",
            "metadata",
            "is_enabled",
            "roles",
            "groups",
            "scopes",
            "resources",
            "permissions",
            "require_all",
            "rotation_policy",
            "rotation_interval_days",
            "rotation_kind",
            "rotation_config",
            "keep_versions",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.initial.setdefault("keep_versions", settings.SERVICES_KEEP_VERSIONS)

    def secrets_given(self) -> dict[str, str]:
        return {key: self.cleaned_data[key] for key in SECRET_FIELDS if self.cleaned_data.get(key)}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        given = self.secrets_given()
        service_type = data.get("service_type")
        if given and service_type:
            allowed = services.SECRET_KEYS[service_type]
            for key in given:
                if key not in allowed:
                    self.add_error(key, f"A {Service.ServiceType(service_type).label} service does not store this.")
            if given and not self.errors:
                # Vault is checked before anything is saved, so an outage is a form error, not a half-saved row.
                try:
                    vault.tenant_client(connection.schema_name)
                except vault.VaultError as exc:
                    raise ValidationError(f"The secret could not be stored: {exc} Nothing was saved.") from None
        return data


@admin.register(Service)
class ServiceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    save_service = staticmethod(services.save_service)
    delete_service = staticmethod(services.delete_service)
    form = ServiceForm
    list_display = ["name", "service_type", "base_url", "status_badge", "vault_version", "last_rotated_at"]
    list_filter = ["service_type", "status", "rotation_policy", "rotation_kind"]
    search_fields = ["name", "description", "base_url"]
    readonly_fields = ["status", "vault_version", "last_rotated_at", "last_rotation_error", "version_history"]
    actions = ["rotate_now"]
    fieldsets = [
        (None, {"fields": ["name", "service_type", "auth_type", "base_url", "description", "metadata", "is_enabled"]}),
        (
            "Secret (write-only: stored in Vault, never shown)",
            {"fields": list(SECRET_FIELDS)},
        ),
        (
            "Who may read it through a tool",
            {"fields": ["roles", "groups", "scopes", "resources", "permissions", "require_all"]},
        ),
        (
            "Rotation",
            {
                "fields": [
                    "rotation_policy",
                    "rotation_interval_days",
                    "rotation_kind",
                    "rotation_config",
                    "keep_versions",
                    "status",
                    "last_rotated_at",
                    "last_rotation_error",
                ]
            },
        ),
        ("Versions", {"fields": ["vault_version", "version_history"]}),
    ]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Service) -> str:
        if obj.status == Service.Status.ROTATION_FAILED:
            return format_html('<strong style="color:#ba2121">{}</strong>', "rotation failed")
        return obj.get_status_display()

    @admin.display(description="version history")
    def version_history(self, obj: Service) -> str:
        rows = list(obj.versions.all()[:50]) if obj.pk else []
        if not rows:
            return "No versions yet."
        body = format_html_join(
            "",
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row.version, row.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"), row.created_by, row.get_reason_display())
             for row in rows),
        )  # fmt: skip
        return format_html(
            '<table class="version-history"><thead><tr><th>version</th><th>time</th><th>by</th><th>why</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def service_arguments(self, request: HttpRequest, form: ServiceForm) -> dict[str, Any]:
        return {"credentials": form.secrets_given()}

    # Each rotation is its own transaction (not one for the whole selection): its new version is in Vault before
    # the row points at it, and a failed rotation commits its failure (status, event) while the others go on.
    @admin.action(description="Rotate now", permissions=["rotate"])
    def rotate_now(self, request: HttpRequest, queryset: QuerySet[Service]) -> None:
        for service in queryset:
            try:
                result = services.rotate_service(actor=request.user, service_id=service.pk, force=True)
            except services.RotationError as exc:
                self.message_user(request, f"Rotation of {service.name} failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Rotated {service.name} to version {result.version}.", messages.SUCCESS)

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("services.rotate_service")
