"""RS256 JWT access tokens (RFC 9068 `at+jwt`) carrying the user's effective grants at issue time."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.db import connection

from oauth import issuer
from oauth.keys import current_key, private_jwk
from rbac.grants import effective_grants

OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}


def access_token_claims(*, user: Any, client_id: str, scopes: list[str], audience: list[str]) -> dict[str, Any]:
    now = int(time.time())
    tenant = connection.tenant
    claims: dict[str, Any] = {
        "iss": issuer.issuer_for(tenant),
        "iat": now,
        "nbf": now,
        "exp": now + settings.OAUTH_ACCESS_TOKEN_SECONDS,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "tenant_id": tenant.slug,
        "aud": audience[0] if len(audience) == 1 else audience,
    }
    grants = effective_grants(user) if user is not None else None
    if user is not None:
        claims["sub"] = str(user.pk)
        claims["email"] = user.email
    else:
        claims["sub"] = client_id  # client credentials: the client acts for itself
    held_scopes = set(grants.scopes) if grants is not None else set()
    # The token's scope never exceeds what the user holds (plus the OIDC scopes they consented to).
    granted = [scope for scope in scopes if scope in OIDC_SCOPES or scope in held_scopes or user is None]
    claims["scope"] = " ".join(granted)
    claims_lists = grants.as_claims() if grants is not None else {}
    for kind in ("roles", "groups", "scopes", "resources", "permissions"):
        claims[kind] = claims_lists.get(kind, [])
    return claims


def mint(claims: dict[str, Any]) -> str:
    key = current_key()
    private, _ = private_jwk(key)
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"})
