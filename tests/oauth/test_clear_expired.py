"""oauth.cleanup.clear_expired_tokens: reuse detection of rotated refresh tokens survives the cleanup job."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import RefreshToken

from audit.models import AuditEvent
from oauth.cleanup import clear_expired_tokens
from tests.support.oauth import OAuthClients, token_request


def _refresh(clients: OAuthClients, refresh_token: str):  # type: ignore[no-untyped-def]
    return token_request(grant_type="refresh_token", refresh_token=refresh_token, client_id=clients.public.client_id)


def test_a_long_revoked_refresh_token_of_a_live_family_still_revokes_the_family(  # type: ignore[no-untyped-def]
    code_tokens, clients
) -> None:
    rotated = _refresh(clients, code_tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.content
    old = RefreshToken.objects.get(revoked__isnull=False)
    # The rotation happened longer ago than the refresh lifetime (DOT's clear_expired would delete it now),
    # while the family's current token is in use.
    long_ago = timezone.now() - timedelta(seconds=settings.OAUTH_REFRESH_TOKEN_SECONDS + 3600)
    RefreshToken.objects.filter(pk=old.pk).update(revoked=long_ago)

    counts = clear_expired_tokens()

    assert counts["revoked_refresh_tokens"] == 0 and RefreshToken.objects.filter(pk=old.pk).exists()
    reuse = _refresh(clients, code_tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert _refresh(clients, rotated.json()["refresh_token"]).json()["error"] == "invalid_grant"  # family ended
    assert AuditEvent.objects.filter(action="oauth.refresh_reuse_detected").exists()
    # The family has no usable token left: its long-revoked member goes now.
    assert clear_expired_tokens()["revoked_refresh_tokens"] == 1
    assert not RefreshToken.objects.filter(pk=old.pk).exists()


def test_the_current_refresh_token_keeps_working_after_the_cleanup(code_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    clear_expired_tokens()
    clear_expired_tokens(now=timezone.now() + timedelta(seconds=settings.OAUTH_ACCESS_TOKEN_SECONDS + 60))
    response = _refresh(clients, code_tokens["refresh_token"])
    assert response.status_code == 200, response.content
