"""Signals `oauth` sends to the layers above it, which connect receivers in their `AppConfig.ready()`."""

from __future__ import annotations

import hashlib

from django.dispatch import Signal
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

# Sent by the revocation endpoint (`oauth.validators.TenantOAuth2Validator.revoke_token`) once DOT has deleted
# the rows, with `digests`: (checksum, expiry) of the access tokens the revocation ends, read before the
# deletion by `access_token_digests`. The MCP endpoint feeds its deny-list from it (`mcp_endpoint.revocation`).
token_revoked = Signal()


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
