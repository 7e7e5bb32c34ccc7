"""Dashboard pages for resource servers protected by the published SDK's runtime API: register one (its
introspection secret is shown once, on the add form), see the tools its manifest pushed, and map each tool to
scopes or mark it public. Every write goes through `oauth.resource_servers` (audited, generation bumped)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from audit.admin import ServiceAdminMixin
from oauth import resource_servers as rs
from oauth.models import ResourceServer, ResourceServerTool

_URL_SAFE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


class ToolMappingForm(forms.ModelForm):
    class Meta:
        model = ResourceServerTool
        fields = ["name", "is_public", "required_scopes"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("is_public") and data.get("required_scopes"):
            raise forms.ValidationError("A public tool needs no scopes: clear the scopes or untick public.")
        return data


class ResourceServerToolInline(admin.TabularInline):
    """One row per tool: public, or at least one of the chosen scopes; neither means denied."""

    model = ResourceServerTool
    save_service = staticmethod(rs.save_tool)
    delete_service = staticmethod(rs.delete_tool)
    form = ToolMappingForm
    fields = ["name", "summary", "suggested", "in_manifest", "is_public", "required_scopes"]
    readonly_fields = ["summary", "suggested", "in_manifest"]
    extra = 0

    @admin.display(description="description")
    def summary(self, obj: ResourceServerTool) -> str:
        text = obj.title or obj.description
        return (text[:160] + "…") if len(text) > 160 else text

    @admin.display(description="suggested by the server")
    def suggested(self, obj: ResourceServerTool) -> str:
        return ", ".join(obj.suggested_scopes) or "-"


class ResourceServerForm(forms.ModelForm):
    introspection_client_secret = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"readonly": "readonly", "size": 60, "autocomplete": "off"}),
        help_text="Copy it now into AUTHSEC_INTROSPECTION_CLIENT_SECRET: it is stored hashed and never shown again.",
    )

    class Meta:
        model = ResourceServer
        fields = ["name", "resource_uri", "scopes", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            self.fields["introspection_client_secret"].initial = rs.new_client_secret()
        else:
            del self.fields["introspection_client_secret"]

    def clean_resource_uri(self) -> str:
        return rs.validate_resource_uri(self.cleaned_data["resource_uri"])

    def clean_introspection_client_secret(self) -> str:
        secret = self.cleaned_data.get("introspection_client_secret") or ""
        if not _URL_SAFE.match(secret):
            raise forms.ValidationError("Use the generated secret (32 to 128 URL-safe characters).")
        return secret


@admin.register(ResourceServer)
class ResourceServerAdmin(ServiceAdminMixin, admin.ModelAdmin):
    save_service = staticmethod(rs.save_resource_server)
    delete_service = staticmethod(rs.delete_resource_server)
    form = ResourceServerForm
    inlines = [ResourceServerToolInline]
    list_display = ["name", "resource_uri", "is_active", "policy_state", "generation", "policy_fetched_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "resource_uri", "client__client_id"]
    filter_horizontal = ["scopes"]

    editable = ["name", "resource_uri", "scopes", "is_active"]
    status = [
        "resource_server_id",
        "introspection_client_id",
        "policy_state",
        "generation",
        "manifest_published_at",
        "policy_fetched",
        "sdk_configuration",
    ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The secret field exists on the add form only: afterwards only its hash is kept.
        return [*self.editable, "introspection_client_secret"] if obj is None else [*self.editable, *self.status]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.status)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ResourceServer]:
        return super().get_queryset(request).select_related("client")

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        # The add form's generated secret becomes the introspection client's (stored hashed, never shown again).
        return {"client_secret": form.cleaned_data.get("introspection_client_secret") or None}

    @admin.display(description="resource server id (AUTHSEC_RESOURCE_SERVER_ID)")
    def resource_server_id(self, obj: ResourceServer) -> str:
        return format_html("<code>{}</code>", obj.pk)

    @admin.display(description="introspection client id")
    def introspection_client_id(self, obj: ResourceServer) -> str:
        return format_html("<code>{}</code>", obj.client.client_id)

    @admin.display(description="policy")
    def policy_state(self, obj: ResourceServer) -> str:
        document = rs.policy_document(obj)
        return f"{document['state']}: {document['reason']}" if document["reason"] else document["state"]

    @admin.display(description="last policy fetch by the SDK")
    def policy_fetched(self, obj: ResourceServer) -> str:
        if obj.policy_fetched_at is None:
            return "never"
        return f"{obj.policy_fetched_at:%Y-%m-%d %H:%M:%S} UTC (generation {obj.policy_fetched_generation})"

    @admin.display(description="SDK configuration (authsec_sdk.runtime.from_env)")
    def sdk_configuration(self, obj: ResourceServer) -> str:
        lines = format_html_join("\n", "{}={}", rs.sdk_settings(obj).items())
        return format_html("<pre>{}</pre>", lines)


__all__ = ["ResourceServerAdmin", "ResourceServerToolInline"]
