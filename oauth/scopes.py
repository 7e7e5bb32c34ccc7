"""Scopes a tenant's clients may request (the OIDC scopes plus the tenant's RBAC scope names), and the one rule
for what a token is granted of them (`granted_scopes`), which the token response, the stored token, the JWT's
`scope` claim and introspection all use. The rule is `rbac.principal`'s scope narrowing: a token's scopes count
as far as its holder holds them (`token_principal`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from oauth2_provider.scopes import BaseScopes

from oauth import issuance
from oauth.authentication import API_SCOPE, is_api_staff
from rbac.engine import Grants
from rbac.grants import effective_grants
from rbac.models import Scope
from rbac.principal import Principal

OIDC_SCOPES = {
    "openid": "Sign you in (OpenID Connect)",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay signed in (refresh tokens)",
}


def tenant_scopes() -> tuple[tuple[str, str], ...]:
    """(name, description) of the tenant's RBAC scopes, by name; kept per process until a scope changes
    (`oauth.issuance`): every token request asks for them."""
    return issuance.cached("scopes", _load_tenant_scopes)


def _load_tenant_scopes() -> tuple[tuple[str, str], ...]:
    return tuple(Scope.objects.order_by("name").values_list("name", "description"))


def token_principal(
    user: Any, scopes: Iterable[str], *, client_id: str = "", grants: Grants | None = None
) -> Principal:
    """Who a token carrying `scopes` stands for, and what it holds now. For a user: their RBAC grants, plus the
    OIDC scopes and `admin` (the management API's scope) while they are active staff or superusers of the
    tenant (`is_api_staff`, the users the management API admits). For a client acting for itself (`user` None): no RBAC
    grants; it holds the OIDC scopes and the tenant's RBAC scope names except `admin`, which always stands for a
    person."""
    tenant_slug = str(getattr(connection.tenant, "slug", "") or "")
    token_scopes = frozenset(scopes)
    if user is None:
        names = {name for name, _description in tenant_scopes()}
        return Principal(
            user_id=None,
            email="",
            tenant_slug=tenant_slug,
            grants=Grants(),
            client_id=client_id,
            token_scopes=token_scopes,
            extra_scopes=frozenset((set(OIDC_SCOPES) | names) - {API_SCOPE}),
        )
    extra = set(OIDC_SCOPES) | ({API_SCOPE} if is_api_staff(user) else set())
    return Principal(
        user_id=user.pk,
        email=getattr(user, "email", ""),
        tenant_slug=tenant_slug,
        grants=(grants if grants is not None else effective_grants(user)) or Grants(),
        client_id=client_id,
        token_scopes=token_scopes,
        extra_scopes=frozenset(extra),
    )


def granted_scopes(requested: Iterable[str], user: Any, *, grants: Grants | None = None) -> list[str]:
    """The requested scopes this token gets, in request order: a scope the holder may not have is dropped
    (RFC 6749 §3.3), never refused, so a client asking for everything in `scopes_supported` still signs in."""
    requested = list(requested)
    return token_principal(user, requested, grants=grants).in_force(requested)


class TenantScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        scopes = dict(OIDC_SCOPES)
        for name, description in tenant_scopes():
            scopes[name] = description or f"Use the '{name}' scope"
        return scopes

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(self.get_all_scopes())

    def get_default_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list[str]:
        return ["openid"]
