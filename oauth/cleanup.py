"""Removing the current schema's expired OAuth rows: access, refresh and ID tokens and grants (authorization codes).

The rules are DOT's `clear_expired` (with REFRESH_TOKEN_EXPIRE_SECONDS and CLEAR_EXPIRED_TOKENS_BATCH_SIZE), with
one difference that reuse detection needs: a revoked refresh token stays while any refresh token of its family is
still usable, because presenting it again is what revokes the family (REFRESH_TOKEN_REUSE_PROTECTION). DOT would
drop it REFRESH_TOKEN_EXPIRE_SECONDS after its revocation, however long the family lives on after it.
Nothing deleted here could still be used: every rule matches only rows DOT's own validation already refuses.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
    refresh_token_expire_timedelta,
)
from oauth2_provider.settings import oauth2_settings

from authsec_site.lib.batches import delete_in_batches

logger = logging.getLogger(__name__)


def clear_expired_tokens(*, now: datetime | None = None) -> dict[str, int]:
    """Delete the current schema's expired OAuth rows; returns the count per kind. A second run deletes nothing."""
    now = now or timezone.now()
    batch = oauth2_settings.CLEAR_EXPIRED_TOKENS_BATCH_SIZE
    refresh_model = get_refresh_token_model()
    counts: dict[str, int] = {}

    # Unrevoked refresh tokens whose access token is gone: DOT refuses them (nothing to refresh against).
    counts["orphaned_refresh_tokens"] = delete_in_batches(
        refresh_model.objects.filter(revoked__isnull=True, access_token__isnull=True), batch
    )
    lifetime = refresh_token_expire_timedelta()
    if lifetime:
        cutoff = now - lifetime
        # Idle expiry: DOT refuses a refresh token once its access token expired longer than the lifetime ago.
        counts["expired_refresh_tokens"] = delete_in_batches(
            refresh_model.objects.filter(revoked__isnull=True, access_token__expires__lte=cutoff), batch
        )
        # Every unrevoked refresh token left is usable (the two rules above took the others).
        live_families = refresh_model.objects.filter(revoked__isnull=True, token_family__isnull=False).values(
            "token_family"
        )
        counts["revoked_refresh_tokens"] = delete_in_batches(
            refresh_model.objects.filter(revoked__lte=cutoff).exclude(token_family__in=live_families), batch
        )
    else:  # refresh tokens never age: a revoked one may be the only trace of a live family, keep them all
        counts["expired_refresh_tokens"] = counts["revoked_refresh_tokens"] = 0
    # An access token with a refresh token stays: it anchors the refresh token's idle expiry.
    counts["access_tokens"] = delete_in_batches(
        get_access_token_model().objects.filter(refresh_token__isnull=True, expires__lt=now), batch
    )
    counts["id_tokens"] = delete_in_batches(
        get_id_token_model().objects.filter(Q(access_token__isnull=True), expires__lt=now), batch
    )
    counts["grants"] = delete_in_batches(get_grant_model().objects.filter(expires__lt=now), batch)
    return counts
