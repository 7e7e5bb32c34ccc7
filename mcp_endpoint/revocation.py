"""Propagating token revocation to the MCP endpoint's offline validation.

DOT keeps only a checksum (SHA-256) of each token and deletes the rows on revocation, so the endpoint cannot
ask the database per request without a query on the hot path. Instead the revocation endpoint's hook
(`oauth.validators.TenantOAuth2Validator.revoke_token`) calls `revoke_for_mcp`, which writes the access
tokens' checksums to Redis until they expire (`mcp_endpoint.bearer.note_revoked`); the endpoint checks that
key in the Redis round trip it makes anyway.
"""

from __future__ import annotations

import hashlib
import logging

from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from mcp_endpoint.bearer import note_revoked

logger = logging.getLogger(__name__)


def access_token_digests(token: str) -> list[tuple[str, int | None]]:
    """(checksum, expiry) of the access tokens that revoking `token` (access or refresh) ends; call before."""
    checksum = hashlib.sha256(token.encode()).hexdigest()
    access = get_access_token_model().objects.filter(token_checksum=checksum).first()
    if access is not None:
        return [(checksum, int(access.expires.timestamp()))]
    refresh = get_refresh_token_model().objects.select_related("access_token").filter(token_checksum=checksum).first()
    if refresh is not None and refresh.access_token is not None:
        return [(refresh.access_token.token_checksum, int(refresh.access_token.expires.timestamp()))]
    return [(checksum, None)]  # unknown here: mark it anyway (harmless, expires by itself)


def revoke_for_mcp(digests: list[tuple[str, int | None]]) -> None:
    try:
        note_revoked(digests)
    except Exception:
        # The database revocation stands; the endpoint may accept the token until it expires. Say so loudly.
        logger.exception("Could not propagate a token revocation to the MCP endpoint")
