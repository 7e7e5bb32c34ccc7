"""django-oauth-toolkit's token, code and ID-token pages of the tenant dashboard: read-only lists. Revoking a token
goes through `oauth.services.revoke_tokens` (audited, needs the change permission); codes and ID tokens are
never deleted here (they expire, and the hourly cleanup removes them).

Named in OAUTH2_PROVIDER's *_ADMIN_CLASS settings, so DOT's own admin module registers these (nothing else
imports this module: it imports DOT's admin module, which imports it back while DOT registers its pages)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext
from oauth2_provider import admin as dot_admin
from oauth2_provider.models import AccessToken, RefreshToken

from oauth import services


class _NoDelete:
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AccessTokenAdmin(_NoDelete, dot_admin.AccessTokenAdmin):
    @admin.action(description="Revoke selected access tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        count = services.revoke_tokens(queryset.select_related("application", "user"), actor=request.user)
        self.message_user(request, ngettext("Revoked %d access token.", "Revoked %d access tokens.", count) % count)


class RefreshTokenAdmin(_NoDelete, dot_admin.RefreshTokenAdmin):
    @admin.action(description="Revoke selected refresh tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[RefreshToken]) -> None:
        count = services.revoke_tokens(queryset.select_related("application", "user"), actor=request.user)
        self.message_user(
            request, ngettext("Revoked %d refresh token.", "Revoked %d refresh tokens.", count) % count, messages.INFO
        )


class GrantAdmin(_NoDelete, dot_admin.GrantAdmin):
    pass


class IDTokenAdmin(_NoDelete, dot_admin.IDTokenAdmin):
    pass
