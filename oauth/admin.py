"""Dashboard pages for the OAuth provider: clients (with approval of held registrations), consents,
signing keys (rotate now) and the tenant's provider settings."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

import audit
from audit.admin import AuditedAdminMixin
from oauth import keys
from oauth.models import Client, Consent, ProviderSettings, SigningKey
from oauth.views import revoke_consent


class ClientAdmin(AuditedAdminMixin, admin.ModelAdmin):
    # Registered by django-oauth-toolkit through its APPLICATION_ADMIN_CLASS setting.
    list_display = ["name", "client_id", "client_type", "authorization_grant_type", "status", "registration_source"]
    list_filter = ["status", "client_type", "authorization_grant_type", "registration_source", "is_resource_server"]
    search_fields = ["name", "client_id", "redirect_uris"]
    actions = ["approve", "reject"]
    raw_id_fields = ["user"]

    @admin.action(description="Approve selected clients (they can obtain tokens)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        self._set_status(request, queryset, Client.Status.ACTIVE, "oauth.client_approved")

    @admin.action(description="Reject selected clients")
    def reject(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        self._set_status(request, queryset, Client.Status.REJECTED, "oauth.client_rejected")

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Client], status: str, action: str) -> None:
        for client in queryset:
            if client.status != status:
                before = client.status
                client.status = status
                client.save(update_fields=["status"])
                audit.record(
                    request.user,
                    action,
                    target=client,
                    request=request,
                    data={"client_id": client.client_id, "before": before, "after": status},
                )
        messages.success(request, f"{queryset.count()} client(s) now {status}.")


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ["user", "client", "scopes", "granted_at", "revoked_at"]
    list_filter = ["revoked_at", "client"]
    search_fields = ["user__email", "client__name", "client__client_id"]
    readonly_fields = ["user", "client", "scopes", "granted_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected consents (and the client's tokens for those users)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Consent]) -> None:
        for consent in queryset.filter(revoked_at__isnull=True).select_related("user", "client"):
            revoke_consent(actor=request.user, consent=consent)
        messages.success(request, "Consents revoked.")


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Public metadata only: private keys never leave Vault."""

    list_display = ["kid", "created_at", "retired_at", "expires_at"]
    readonly_fields = ["kid", "public_jwk", "vault_path", "created_at", "retired_at", "expires_at"]
    actions = ["rotate_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Rotate the signing key now (the old key stays in JWKS until its tokens expire)")
    def rotate_now(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        key = keys.create_signing_key(actor=request.user)
        messages.success(request, f"New signing key {key.kid} is current.")


@admin.register(ProviderSettings)
class ProviderSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "dynamic_registration", "allow_cimd"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ProviderSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
