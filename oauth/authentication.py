"""OAuth bearer tokens for the management API: DOT's DRF authentication (token looked up by hash in this
tenant's schema; expired, revoked and other-resource tokens refused), plus the scope rule in
`api.permissions` (a bearer token must carry the `admin` scope)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.contrib.rest_framework import OAuth2Authentication

API_SCOPE = "admin"


def is_api_staff(user: Any) -> bool:
    """An active staff member (or superuser) of the tenant the request is for: who may use the management
    API, and so who may be granted the `API_SCOPE` scope."""
    return bool(user and user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


class BearerTokenAuthentication(OAuth2Authentication):
    """Only the ``Authorization: Bearer`` header counts (never a token in the body or query, RFC 9700),
    so requests without one are not parsed here and keep their ordinary errors."""

    www_authenticate_realm = "authsec-api"

    def authenticate(self, request: Any) -> Any:
        if not request.META.get("HTTP_AUTHORIZATION", "").lower().startswith("bearer "):
            return None
        return super().authenticate(request)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI description of the bearer scheme (registered by being defined)."""

    target_class = "oauth.authentication.BearerTokenAuthentication"
    name = "oauthBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                f"An access token of this tenant's issuer with the '{API_SCOPE}' scope, issued without a resource."
            ),
        }
