"""The tenant dashboard's approval notification settings: email on or off, and the signed webhook (URL, and a
write-only secret kept in Vault)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from approvals import services
from approvals.models import ApprovalSettings
from audit.admin import ServiceAdminMixin


class ApprovalSettingsForm(forms.ModelForm):
    webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        strip=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"The HMAC-SHA256 key shared with the receiver (at least {services.MIN_WEBHOOK_SECRET} characters). "
        "Write-only: kept in Vault, never shown. Leave empty to keep the current one.",
    )

    class Meta:
        model = ApprovalSettings
        fields = ["email_enabled", "webhook_url"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        secret = data.get("webhook_secret") or ""
        if secret and len(secret) < services.MIN_WEBHOOK_SECRET:
            self.add_error("webhook_secret", f"Use at least {services.MIN_WEBHOOK_SECRET} characters.")
        if data.get("webhook_url") and not secret and not self.instance.webhook_secret_version:
            self.add_error("webhook_secret", "A webhook needs a secret to sign its requests.")
        return data


@admin.register(ApprovalSettings)
class ApprovalSettingsAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """One row per tenant (`approvals.services.save_settings`); the list opens the row; no add, no delete."""

    save_service = staticmethod(services.save_settings)
    form = ApprovalSettingsForm
    fields = ("email_enabled", "webhook_url", "webhook_secret", "secret_state", "updated_at")
    readonly_fields = ("secret_state", "updated_at")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.display(description="secret")
    def secret_state(self, obj: ApprovalSettings) -> str:
        return f"stored in Vault (version {obj.webhook_secret_version})" if obj.webhook_secret_version else "none"

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        return {"webhook_secret": form.cleaned_data.get("webhook_secret") or ""}

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = ApprovalSettings.load()
        name = self.admin_site.name
        return HttpResponseRedirect(
            reverse(f"{name}:approvals_approvalsettings_change", args=[row.pk], current_app=name)
        )
