"""Writes of the OAuth provider: a user's consents, and ending a user's tokens (which other apps trigger)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
    revoke_access_token,
)

from audit.recorder import record
from audit.writes import service
from oauth.models import Consent


@service
def revoke_consent(*, actor: Any, consent: Consent) -> None:
    """Forget a remembered consent (the user is asked again) and revoke the client's tokens for the user."""
    consent.revoked_at = timezone.now()
    consent.save(update_fields=["revoked_at"])
    get_access_token_model().objects.filter(user=consent.user, application=consent.client).delete()
    # The refresh tokens too: otherwise the client would mint a new access token from one.
    for refresh in get_refresh_token_model().objects.filter(
        user=consent.user, application=consent.client, revoked__isnull=True
    ):
        refresh.revoke()
    record(
        actor,
        "oauth.consent_revoked",
        target=consent.client,
        data={"client_id": consent.client.client_id, "user": consent.user.email},
    )


@service
def revoke_consents(consents: Iterable[Consent], *, actor: Any) -> int:
    """Revoke several consents at once (a dashboard bulk action); those already revoked are left alone.
    Returns how many were revoked."""
    count = 0
    for consent in consents:
        if consent.revoked_at is None:
            revoke_consent.nested(actor=actor, consent=consent)
            count += 1
    return count


@service
def revoke_tokens(tokens: Iterable[Any], *, actor: Any) -> int:
    """Revoke access or refresh tokens an admin chose in the dashboard, as the revocation endpoint does (an access
    token with its refresh token; a refresh token with its access token, kept as a tombstone for reuse
    detection). One event per token. Returns how many were revoked."""
    refresh_model = get_refresh_token_model()
    count = 0
    for token in tokens:
        kind = "refresh" if isinstance(token, refresh_model) else "access"
        data = {
            "kind": kind,
            "token_id": token.pk,
            "client_id": token.application.client_id if token.application_id else None,
            "user": token.user.email if token.user_id else None,
        }
        record(actor, "oauth.token_revoked_by_admin", target=token.application, data=data)
        if kind == "refresh":
            token.revoke()
        else:
            revoke_access_token(token)
        count += 1
    return count


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
