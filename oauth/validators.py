"""The tenant-aware OAuth2 validator: JWT access tokens, known resources only, OIDC claims, audit."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connection
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

import audit
from audit.recorder import Actor
from oauth import issuer, tokens
from rbac.models import Application


def known_resources() -> set[str]:
    """RFC 8707 resources this tenant issues tokens for: its active applications' MCP endpoints."""
    return {
        issuer.mcp_resource(slug) for slug in Application.objects.filter(is_active=True).values_list("slug", flat=True)
    }


def _client_actor(request: Any) -> Actor:
    client = getattr(request, "client", None)
    return Actor("client", getattr(client, "client_id", "") or "", getattr(client, "name", "") or "")


class TenantOAuth2Validator(OAuth2Validator):
    # Custom ID-token / userinfo claims are dropped by DOT unless mapped to a scope here.
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "email": "email",
        "email_verified": "email",
        "name": "profile",
        "tenant_id": "openid",
    }

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "name": user.get_full_name(),
            "tenant_id": connection.tenant.slug,
        }

    def get_oidc_issuer_endpoint(self, request: Any) -> str:
        return issuer.issuer_for()

    def validate_jwt_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        # With OIDC on, oauthlib treats any JWT-looking bearer as an ID token; ours are access tokens.
        return self.validate_bearer_token(token, scopes, request)

    def _check_known_resources(self, request: Any, resources: list[str]) -> None:
        unknown = [uri for uri in resources if uri not in known_resources()]
        if unknown:
            raise errors.CustomOAuth2Error(
                error="invalid_target",
                description=f"Unknown resource: {unknown[0]}. Tokens are issued for this tenant's MCP endpoints.",
                request=request,
            )

    def save_authorization_code(
        self, client_id: str, code: dict[str, Any], request: Any, *args: Any, **kwargs: Any
    ) -> None:
        resources = getattr(request, "resource", None) or []
        if isinstance(resources, str):
            resources = resources.split()
        self._check_known_resources(request, list(resources))
        super().save_authorization_code(client_id, code, request, *args, **kwargs)

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        # Resolve the audience first (request param, grant or refresh token), then replace the opaque
        # token oauthlib generated with a signed JWT before DOT stores (a hash of) it.
        self._check_and_set_request_resource(request)
        self._check_known_resources(request, request.resource)
        user = request.user if request.grant_type != "client_credentials" else None
        audience = list(request.resource) or [issuer.issuer_for()]
        claims = tokens.access_token_claims(
            user=user, client_id=request.client.client_id, scopes=list(request.scopes or []), audience=audience
        )
        token["access_token"] = tokens.mint(claims)
        super()._save_bearer_token(token, request, *args, **kwargs)
        audit.record(
            user or _client_actor(request),
            "oauth.token_refreshed" if request.grant_type == "refresh_token" else "oauth.token_issued",
            data={
                "client_id": request.client.client_id,
                "grant_type": request.grant_type,
                "scope": claims["scope"],
                "aud": claims["aud"],
                "jti": claims["jti"],
            },
        )

    def revoke_token(self, token: str, token_type_hint: Any, request: Any, *args: Any, **kwargs: Any) -> None:
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        audit.record(_client_actor(request), "oauth.token_revoked", data={"token_type_hint": token_type_hint or ""})

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        if not valid:
            from oauth2_provider.models import get_refresh_token_model

            checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
            rt = get_refresh_token_model().objects.filter(token_checksum=checksum).first()
            if rt is not None and rt.revoked is not None and rt.token_family:
                # DOT has just revoked the whole family (REFRESH_TOKEN_REUSE_PROTECTION).
                audit.record(
                    _client_actor(request),
                    "oauth.refresh_reuse_detected",
                    outcome="deny",
                    data={"client_id": client.client_id, "family": str(rt.token_family), "user_id": rt.user_id},
                )
        return valid
