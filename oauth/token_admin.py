"""django-oauth-toolkit's access- and refresh-token pages, with their "revoke" action needing the change permission.

DOT offers the action to anyone who may view tokens; revoking changes them. Named in OAUTH2_PROVIDER's
ACCESS_TOKEN_ADMIN_CLASS / REFRESH_TOKEN_ADMIN_CLASS, so DOT's own admin module registers these (nothing else
imports this module: it imports DOT's admin module, which imports it back while DOT registers its pages)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from oauth2_provider import admin as dot_admin
from oauth2_provider.models import AccessToken, RefreshToken


class AccessTokenAdmin(dot_admin.AccessTokenAdmin):
    @admin.action(description="Revoke selected access tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        super().revoke_tokens(request, queryset)


class RefreshTokenAdmin(dot_admin.RefreshTokenAdmin):
    @admin.action(description="Revoke selected refresh tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[RefreshToken]) -> None:
        super().revoke_tokens(request, queryset)
