"""Tenant dashboard: MCP login sessions (read-only list, revocable), and choosing which registered tools an
application serves (on the application's page)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import ServiceAdminMixin
from mcp_endpoint.models import AuthSession
from mcp_endpoint.registry import ensure_loaded, registry
from mcp_endpoint.services import revoke_auth_sessions, seed_tool_policies
from rbac.admin import ApplicationAdmin
from rbac.models import Application, ToolPolicy


class ApplicationForm(forms.ModelForm):
    serve_tools = forms.MultipleChoiceField(
        label="Serve registered tools",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=(
            "Tools registered in this server's code (@protected_by_AuthSec) that this application does not serve "
            "yet. Each one ticked gets a tool policy seeded from its code-declared requirement; edit it below."
        ),
    )

    class Meta:
        model = Application
        fields = ["slug", "name", "description", "is_active", "auth_mode"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ensure_loaded()
        served = (
            set(ToolPolicy.objects.filter(application=self.instance).values_list("tool_name", flat=True))
            if self.instance.pk
            else set()
        )
        self.fields["serve_tools"].choices = [
            (name, f"{name} — {registry.get(name).description}" if registry.get(name).description else name)  # type: ignore[union-attr]
            for name in sorted(registry.names())
            if name not in served
        ]


class ServedToolsApplicationAdmin(ApplicationAdmin):
    form = ApplicationForm

    def save_extra(self, request: HttpRequest, form: Any) -> None:
        tools = form.cleaned_data.get("serve_tools") or []
        if tools:
            seeded = seed_tool_policies.nested(actor=request.user, application=form.instance, tools=tools)
            messages.success(request, f"Now serving {len(seeded)} more tool(s): {', '.join(seeded)}.")


admin.site.unregister(Application)
admin.site.register(Application, ServedToolsApplicationAdmin)


@admin.register(AuthSession)
class AuthSessionAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Read-only list; the "revoke" action logs sessions out (`revoke_auth_sessions`), nothing deletes them here
    (the cleanup job removes expired ones)."""

    list_display = ["short_id", "application", "status", "user", "created_at", "expires_at", "authenticated_at"]
    list_filter = ["status", "application"]
    search_fields = ["user__email", "application__slug"]
    list_select_related = ["application", "user"]
    actions = ["revoke"]
    readonly_fields = [
        "application", "status", "user", "created_at", "expires_at", "authenticated_at",
        "started_ip", "started_user_agent", "callback_user", "callback_at", "ended_at",
    ]  # fmt: skip
    exclude = ["id", "code_verifier", "state", "user_code_hash"]

    @admin.display(description="session")
    def short_id(self, obj: AuthSession) -> str:
        return obj.state[:12]  # a hash: the session id itself is a bearer secret and is never shown

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # Revoking ends a session, as deleting it did: the same Django permission.
        return request.user.has_perm("mcp_endpoint.delete_authsession")

    @admin.action(description="Revoke selected sessions (log them out)", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AuthSession]) -> None:
        count = revoke_auth_sessions(queryset.select_related("application"), actor=request.user)
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)
