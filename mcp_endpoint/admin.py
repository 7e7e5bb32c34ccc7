"""Tenant dashboard: MCP login sessions (read-only list, revocable)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mcp_endpoint import notify
from mcp_endpoint.login import audit_session
from mcp_endpoint.models import AuthSession


@admin.register(AuthSession)
class AuthSessionAdmin(admin.ModelAdmin):
    list_display = ["short_id", "application", "status", "user", "created_at", "expires_at", "authenticated_at"]
    list_filter = ["status", "application"]
    search_fields = ["user__email", "application__slug"]
    list_select_related = ["application", "user"]
    actions = ["revoke"]
    readonly_fields = ["application", "status", "user", "created_at", "expires_at", "authenticated_at"]
    exclude = ["id", "code_verifier", "state"]

    @admin.display(description="session")
    def short_id(self, obj: AuthSession) -> str:
        return obj.state[:12]  # a hash: the session id itself is a bearer secret and is never shown

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuthSession | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected sessions (log them out)", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AuthSession]) -> None:
        count = 0
        for session in queryset.select_related("application").exclude(status=AuthSession.Status.LOGGED_OUT):
            session.status = AuthSession.Status.LOGGED_OUT
            session.save(update_fields=["status"])
            audit_session(request.user, "mcp.auth_session_revoked", session)
            notify.tools_changed(session.mcp_session_id)
            count += 1
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)
