"""Propagating token revocation to the MCP endpoint's offline validation.

DOT keeps only a checksum (SHA-256) of each token and deletes the rows on revocation, so the endpoint cannot
ask the database per request without a query on the hot path. Instead the revocation endpoint sends
`oauth.signals.token_revoked`, whose receiver here (`_token_revoked`, connected in `McpEndpointConfig.ready`)
calls `revoke_for_mcp`, which writes the access tokens' checksums to Redis until they expire
(`mcp_endpoint.bearer.note_revoked`); the endpoint checks that key in the Redis round trip it makes anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp_endpoint.bearer import note_revoked

logger = logging.getLogger(__name__)


def revoke_for_mcp(digests: list[tuple[str, int | None]]) -> None:
    try:
        note_revoked(digests)
    except Exception:
        # The database revocation stands; the endpoint may accept the token until it expires. Say so loudly.
        logger.exception("Could not propagate a token revocation to the MCP endpoint")


def _token_revoked(sender: Any, digests: list[tuple[str, int | None]], **kwargs: Any) -> None:
    revoke_for_mcp(digests)
