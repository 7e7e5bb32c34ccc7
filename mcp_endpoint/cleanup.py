"""Removing the current schema's MCP login-tool auth sessions (also the SDK's /sdkmgr/mcp-auth/ sessions) that
ended: once `expires_at` has passed no status can use them any more (pending and authenticated ones report
`expired`; logged-out and denied ones ended earlier). They are kept MCP_AUTH_SESSION_KEEP_SECONDS past their
expiry, so a late status call still answers "expired" and the dashboard lists recent logins."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from authsec_site.lib.batches import delete_in_batches
from mcp_endpoint.models import AuthSession


def clear_expired_auth_sessions(*, now: datetime | None = None) -> int:
    """Delete auth sessions expired longer than MCP_AUTH_SESSION_KEEP_SECONDS ago; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.MCP_AUTH_SESSION_KEEP_SECONDS)
    return delete_in_batches(AuthSession.objects.filter(expires_at__lte=cutoff), settings.CLEANUP_BATCH_SIZE)
