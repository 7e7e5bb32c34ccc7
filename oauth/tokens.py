"""RS256 JWT access tokens (RFC 9068 `at+jwt`) carrying the user's effective grants at issue time."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.db import connection

from oauth import issuer
from oauth.keys import signing_key
from oauth.scopes import granted_scopes
from rbac.grants import effective_grants


def random_token(request: Any) -> str:
    """oauthlib's token generators here (`ACCESS_TOKEN_GENERATOR`, `REFRESH_TOKEN_GENERATOR`): 256 bits from the
    operating system's CSPRNG in one call. oauthlib's default draws 30 characters one by one (≈ 178 bits, 30 calls
    into `SystemRandom`, a tenth of a millisecond a token). The access token it makes is replaced by the signed JWT
    before anything stores or sends it (`TenantOAuth2Validator._mint_access_token`)."""
    return secrets.token_urlsafe(32)


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
    # The one granted scope (oauth.scopes.granted_scopes): the validator stores and answers exactly this.
    claims["scope"] = " ".join(granted_scopes(scopes, user, grants=grants))  # the grants just read, not again
    claims_lists = grants.as_claims() if grants is not None else {}
    for kind in ("roles", "groups", "scopes", "resources", "permissions"):
        claims[kind] = claims_lists.get(kind, [])
    return claims


def mint(claims: dict[str, Any]) -> str:
    key, private, _ = signing_key()
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"})


def mint_id_token(*, user: Any, client_id: str, auth_time: int, extra: dict[str, Any] | None = None) -> str:
    """An OIDC ID token (RS256, the tenant's current key) for `user` and the client `client_id`; `extra` claims added
    (a CIBA sign-in's `urn:openid:params:jwt:claim:auth_req_id`)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer.issuer_for(connection.tenant),
        "sub": str(user.pk),
        "aud": client_id,
        "iat": now,
        "exp": now + settings.OAUTH_ID_TOKEN_SECONDS,
        "auth_time": auth_time,
        "email": user.email,
        **(extra or {}),
    }
    return sign_id_token(claims)


class _TextEncoder(json.JSONEncoder):
    """Claims as django-oauth-toolkit serialises an ID token's (``json.dumps(..., default=str)``)."""

    def default(self, o: Any) -> Any:
        return str(o)


def sign_id_token(claims: dict[str, Any]) -> str:
    """An ID token with `claims`: RS256, the tenant's current key (its `kid`, the key's JWK thumbprint), signed with
    the private key object kept per process (`oauth.keys.private_jwk`)."""
    key, private, _ = signing_key()
    return jwt.encode(
        claims, private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"}, json_encoder=_TextEncoder
    )
