"""Writes of the OAuth provider that other apps trigger: ending a user's tokens."""

from __future__ import annotations

from typing import Any

from oauth2_provider.models import get_access_token_model, get_grant_model, get_id_token_model, get_refresh_token_model


def revoke_user_tokens(*, user: Any) -> dict[str, int]:
    """Delete every access, refresh and ID token and every authorization code (grant) of `user`.

    Runs in the caller's transaction. Each deleted access token feeds the MCP endpoint's deny-list after commit
    (`mcp_endpoint.signals._access_token_deleted`), as any other revocation does. Returns the counts."""
    access = get_access_token_model().objects.filter(user=user).delete()[1]
    refresh = get_refresh_token_model().objects.filter(user=user).delete()[1]
    id_tokens = get_id_token_model().objects.filter(user=user).delete()[1]
    grants = get_grant_model().objects.filter(user=user).delete()[1]
    return {
        "access_token_count": access.get(get_access_token_model()._meta.label, 0),
        "refresh_token_count": refresh.get(get_refresh_token_model()._meta.label, 0),
        "id_token_count": id_tokens.get(get_id_token_model()._meta.label, 0),
        "grant_count": grants.get(get_grant_model()._meta.label, 0),
    }


def _user_access_ended(sender: Any, user: Any, reason: str, **kwargs: Any) -> dict[str, int]:
    return revoke_user_tokens(user=user)
