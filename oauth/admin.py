"""Dashboard pages for the OAuth provider: clients (with approval of held registrations), consents,
signing keys (rotate now), the tenant's provider settings and its upstream identity providers. Every write goes
through the oauth service functions (`client_services`, `services`, `keys`, `upstream_services`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path
from django.utils.html import format_html

from audit.admin import ServiceAdminMixin
from oauth import client_services, keys, services, upstream, upstream_services
from oauth.models import Client, Consent, ProviderSettings, SigningKey, UpstreamProvider
from oauth.resource_server_admin import ResourceServerAdmin  # noqa: F401 - registers the resource-server pages


class ClientAdmin(ServiceAdminMixin, admin.ModelAdmin):
    # Registered by django-oauth-toolkit through its APPLICATION_ADMIN_CLASS setting.
    save_service = staticmethod(client_services.save_client)
    delete_service = staticmethod(client_services.delete_client)
    list_display = ["name", "client_id", "client_type", "authorization_grant_type", "status", "registration_source"]
    list_filter = [
        "status",
        "client_type",
        "authorization_grant_type",
        "registration_source",
        "is_resource_server",
        "is_ciba_client",
    ]
    search_fields = ["name", "client_id", "redirect_uris"]
    actions = ["approve", "reject"]
    raw_id_fields = ["user"]

    @admin.action(description="Approve selected clients (they can obtain tokens)", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        self._set_status(request, queryset, Client.Status.ACTIVE)

    @admin.action(description="Reject selected clients", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        self._set_status(request, queryset, Client.Status.REJECTED)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Client], status: str) -> None:
        changed = client_services.set_clients_status(queryset, actor=request.user, status=status, request=request)
        messages.success(request, f"{changed} client(s) now {status}.")

    def get_urls(self) -> list[URLPattern]:
        # One-click buttons (dashboard home): POST only, CSRF-checked by admin_view, change permission required.
        decide = self.admin_site.admin_view(self.decide_view)
        return [
            path("<int:pk>/approve/", decide, {"status": Client.Status.ACTIVE}, name="oauth_client_approve"),
            path("<int:pk>/reject/", decide, {"status": Client.Status.REJECTED}, name="oauth_client_reject"),
            *super().get_urls(),
        ]

    def decide_view(self, request: HttpRequest, pk: int, status: str) -> HttpResponse:
        """Approve or reject one client, then go back to the dashboard home."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        client = get_object_or_404(Client, pk=pk)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        if client_services.set_client_status(actor=request.user, client=client, status=status, request=request):
            verb = "approved: it can now sign users in" if status == Client.Status.ACTIVE else "rejected"
            messages.success(request, f"{client.name or client.client_id} {verb}.")
        return redirect("admin:index")


@admin.register(Consent)
class ConsentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Read-only: a consent is granted on the authorize page and ended with the revoke action."""

    list_display = ["user", "client", "scopes", "granted_at", "revoked_at"]
    list_filter = ["revoked_at", "client"]
    search_fields = ["user__email", "client__name", "client__client_id"]
    readonly_fields = ["user", "client", "scopes", "granted_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(
        description="Revoke selected consents (and the client's tokens for those users)", permissions=["change"]
    )
    def revoke(self, request: HttpRequest, queryset: QuerySet[Consent]) -> None:
        count = services.revoke_consents(queryset.select_related("user", "client"), actor=request.user)
        messages.success(request, f"{count} consent(s) revoked.")


@admin.register(SigningKey)
class SigningKeyAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Public metadata only (read-only): private keys never leave Vault; "rotate now" makes a new current key."""

    list_display = ["kid", "created_at", "retired_at", "expires_at"]
    readonly_fields = ["kid", "public_jwk", "vault_path", "created_at", "retired_at", "expires_at"]
    actions = ["rotate_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description="Rotate the signing key now (the old key stays in JWKS until its tokens expire)",
        permissions=["change"],
    )
    def rotate_now(self, request: HttpRequest, queryset: QuerySet[SigningKey]) -> None:
        key = keys.create_signing_key(actor=request.user)
        messages.success(request, f"New signing key {key.kid} is current.")


@admin.register(ProviderSettings)
class ProviderSettingsAdmin(ServiceAdminMixin, admin.ModelAdmin):
    save_service = staticmethod(client_services.save_provider_settings)
    list_display = ["__str__", "dynamic_registration", "allow_cimd"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ProviderSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _HttpsURLField(forms.URLField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(assume_scheme="https", **kwargs)


class UpstreamProviderForm(forms.ModelForm):
    """The client secret is write-only: never rendered back, and an empty field on edit keeps the stored one."""

    client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored only in Vault and never shown again. Leave empty to keep the current secret.",
    )

    class Meta:
        model = UpstreamProvider
        fields = [
            "name",
            "slug",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "is_enabled",
            "auto_create_users",
            "allowed_email_domains",
        ]
        field_classes = {"issuer": _HttpsURLField}

    def clean_issuer(self) -> str:
        issuer = self.cleaned_data["issuer"]
        try:
            return upstream.check_url(issuer, what="issuer URL")
        except upstream.UpstreamError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_scopes(self) -> str:
        scopes = self.cleaned_data["scopes"].split()
        missing = [scope for scope in ("openid", "email") if scope not in scopes]
        if missing:
            raise forms.ValidationError(f"Sign-in needs the scope(s) {', '.join(missing)}.")
        return " ".join(dict.fromkeys(scopes))

    def clean_allowed_email_domains(self) -> list[str]:
        domains = [d.strip().lstrip("@").lower() for d in self.cleaned_data["allowed_email_domains"] if d.strip()]
        for domain in domains:
            if "." not in domain or any(not part for part in domain.split(".")) or "@" in domain:
                raise forms.ValidationError(f"{domain!r} is not a domain name.")
        return domains

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance._state.adding and not data.get("client_secret"):
            self.add_error("client_secret", "A new provider needs its client secret.")
        return data


class UpstreamProviderAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """External OpenID providers offered as "Sign in with <name>" on the tenant's login page. The row is written
    after its client secret is in Vault (`oauth.upstream_services`)."""

    save_service = staticmethod(upstream_services.save_upstream_provider)
    delete_service = staticmethod(upstream_services.delete_upstream_provider)
    form = UpstreamProviderForm
    list_display = ["name", "slug", "issuer", "is_enabled", "auto_create_users", "created_at"]
    list_filter = ["is_enabled", "auto_create_users"]
    search_fields = ["name", "slug", "issuer", "client_id"]

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        return {"client_secret": form.cleaned_data.get("client_secret") or ""}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is part of the callback URL registered at the upstream and of the Vault path.
        fixed = ["callback_url", "secret_status", "created_at", "updated_at"]
        return ["slug", *fixed] if obj is not None else fixed

    @admin.display(description="Callback URL (register it at the provider)")
    def callback_url(self, obj: UpstreamProvider) -> str:
        return format_html("<code>{}</code>", upstream.redirect_uri(obj)) if obj.slug else "-"

    @admin.display(description="Client secret")
    def secret_status(self, obj: UpstreamProvider) -> str:
        if obj.secret_version is None:
            return "Not stored yet"
        return f"Stored in Vault (version {obj.secret_version})"


admin.site.register(UpstreamProvider, UpstreamProviderAdmin)
