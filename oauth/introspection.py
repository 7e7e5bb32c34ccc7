"""RFC 7662 answers: DOT's fields (`active`, `scope`, `exp`, `client_id`, `username`, `aud`) plus `sub`, `iss`,
`iat`, `jti` and `token_type`, which resource servers such as the published SDK's `HybridValidator` read.

`scope` is what the token was issued with, narrowed again by the rule it was issued under: the scopes in force
for the token's principal now (`oauth.scopes.token_principal`, `rbac.principal`: RBAC scopes still held, `admin`
while still staff), so a scope taken away in the dashboard stops counting at the next introspection, whatever the
token says. A resource server registered for the SDK's runtime API only learns about tokens issued for its own URI.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jwt
from django.http import JsonResponse
from oauth2_provider.models import get_access_token_model

from oauth import issuer
from oauth.keys import published_keys
from oauth.models import Client, ResourceServer
from oauth.scopes import token_principal

INACTIVE = {"active": False}


def _claims(token_value: str) -> dict[str, Any]:
    """The claims of one of our JWT access tokens (signature checked against the published keys)."""
    try:
        kid = jwt.get_unverified_header(token_value).get("kid")
        key = next((k for k in published_keys() if k.get("kid") == kid), None)
        if key is None:
            return {}
        return jwt.decode(
            token_value,
            jwt.PyJWK(key).key,
            algorithms=["RS256"],
            issuer=issuer.issuer_for(),
            options={"verify_aud": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        return {}


def _current_scopes(scopes: list[str], user: Any, client_id: str) -> list[str]:
    """Scopes that still count: the issued ones in force for the token's principal now (its user, or for a client
    acting for itself the client), in the token's order."""
    return token_principal(user, scopes, client_id=client_id).in_force(scopes)


def _resource_server_of(client: Client | None) -> ResourceServer | None:
    if client is None:
        return None
    return ResourceServer.objects.filter(client=client).first()


def token_response(token_value: str | None, client: Client | None) -> JsonResponse:
    if token_value is None:
        return JsonResponse(
            {"error": "invalid_request", "error_description": "Token parameter is missing."}, status=400
        )
    checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
    token = (
        get_access_token_model().objects.select_related("user", "application").filter(token_checksum=checksum).first()
    )
    if token is None or not token.is_valid():
        return JsonResponse(INACTIVE)
    if token.user is not None and not token.user.is_active:
        return JsonResponse(INACTIVE)
    audiences = list(token.resource or [])
    server = _resource_server_of(client)
    if server is not None and (not server.is_active or server.resource_uri not in audiences):
        return JsonResponse(INACTIVE)  # RFC 7662 §4: a resource server learns nothing of others' tokens
    claims = _claims(token_value)
    issued_scope = claims.get("scope") if isinstance(claims.get("scope"), str) else token.scope
    client_id = getattr(token.application, "client_id", "")
    data: dict[str, Any] = {
        "active": True,
        "scope": " ".join(_current_scopes(issued_scope.split(), token.user, client_id)),
        "exp": int(token.expires.timestamp()),
        "iss": issuer.issuer_for(),
        "token_type": "Bearer",
        "sub": claims.get("sub") or (str(token.user.pk) if token.user else getattr(token.application, "client_id", "")),
    }
    for name in ("iat", "nbf", "jti"):
        if name in claims:
            data[name] = claims[name]
    if token.application:
        data["client_id"] = token.application.client_id
    if token.user:
        data["username"] = token.user.get_username()
    if audiences:
        data["aud"] = audiences
    return JsonResponse(data)
