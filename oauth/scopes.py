"""Scopes a tenant's clients may request: the OIDC scopes plus the tenant's RBAC scope names."""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

from rbac.models import Scope

OIDC_SCOPES = {
    "openid": "Sign you in (OpenID Connect)",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay signed in (refresh tokens)",
}


class TenantScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        scopes = dict(OIDC_SCOPES)
        for name, description in Scope.objects.values_list("name", "description"):
            scopes[name] = description or f"Use the '{name}' scope"
        return scopes

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(self.get_all_scopes())

    def get_default_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list[str]:
        return ["openid"]
