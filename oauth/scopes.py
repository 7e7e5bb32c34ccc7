"""Scopes a tenant's clients may request (the OIDC scopes plus the tenant's RBAC scope names), and the one rule
for what a token is granted of them (`granted_scopes`), which the token response, the stored token, the JWT's
`scope` claim and introspection all use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oauth2_provider.scopes import BaseScopes

from oauth.authentication import API_SCOPE
from rbac.api.permissions import is_api_staff
from rbac.grants import effective_grants
from rbac.models import Scope

OIDC_SCOPES = {
    "openid": "Sign you in (OpenID Connect)",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay signed in (refresh tokens)",
}


def grantable_scopes(user: Any) -> set[str]:
    """What a token may carry. For a user: the OIDC scopes, the RBAC scopes their roles and groups give them,
    and `admin` (the management API's scope) when they are active staff or superusers of the tenant — the
    users `rbac.api.permissions` admits. For a client acting for itself (`user` None): the OIDC scopes and
    the tenant's RBAC scopes except `admin`, which always stands for a person."""
    if user is None:
        return (set(OIDC_SCOPES) | set(Scope.objects.values_list("name", flat=True))) - {API_SCOPE}
    held = set(OIDC_SCOPES) | set(effective_grants(user).scopes)
    if is_api_staff(user):
        held.add(API_SCOPE)
    return held


def granted_scopes(requested: Iterable[str], user: Any) -> list[str]:
    """The requested scopes this token gets, in request order: a scope the holder may not have is dropped
    (RFC 6749 §3.3), never refused, so a client asking for everything in `scopes_supported` still signs in."""
    allowed = grantable_scopes(user)
    return [scope for scope in dict.fromkeys(requested) if scope in allowed]


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
