"""Writes of the OAuth provider: a user's consents, ending a user's tokens (which other apps trigger), and the
tokens of backchannel (CIBA) sign-ins."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
    revoke_access_token,
    set_token_value,
)

from audit.recorder import record
from audit.writes import service
from oauth import issuer, tokens
from oauth.models import Client, Consent


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


@service
def issue_backchannel_token(
    *, client: Client, user: Any, scopes: list[str], grant: str, amr: list[str], auth_req_id: str = ""
) -> dict[str, Any]:
    """Mint and store an access token of the tenant's issuer for `user`, asked for by a CIBA client (`grant`:
    ``ciba`` after the user approved on the approval page, ``totp`` after a TOTP code). The token response
    (RFC 6749 §5.1, CIBA §10.1.1); the JWT's audience is the issuer, its grants the user's at issue time, and
    `amr`/`auth_time` say how and when the user proved it was them."""
    now = int(time.time())
    claims = tokens.access_token_claims(
        user=user, client_id=client.client_id, scopes=scopes, audience=[issuer.issuer_for()]
    )
    claims["amr"] = amr
    claims["auth_time"] = now
    raw = tokens.mint(claims)
    row = get_access_token_model()(
        user=user,
        application=client,
        scope=claims["scope"],
        expires=timezone.now() + dt.timedelta(seconds=settings.OAUTH_ACCESS_TOKEN_SECONDS),
    )
    set_token_value(row, raw)
    row.save()
    record(
        user,
        "oauth.ciba_token_issued",
        target=client,
        data={"client_id": client.client_id, "grant": grant, "scope": claims["scope"], "jti": claims["jti"],
              "auth_req_id": auth_req_id},
    )  # fmt: skip
    answer = {
        "access_token": raw,
        "token_type": "Bearer",
        "expires_in": settings.OAUTH_ACCESS_TOKEN_SECONDS,
        "scope": claims["scope"],
    }
    if "openid" in claims["scope"].split():  # CIBA §10.1.1: an ID token with the request's id
        extra = {"urn:openid:params:jwt:claim:auth_req_id": auth_req_id} if auth_req_id else {}
        answer["id_token"] = tokens.mint_id_token(user=user, client_id=client.client_id, auth_time=now, extra=extra)
    return answer


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
