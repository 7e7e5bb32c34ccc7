"""Models of the hosted MCP endpoint: the seed's login-tool auth sessions (database only, never in memory)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def session_ttl() -> int:
    """Seconds an auth session lives (`MCP_AUTH_SESSION_SECONDS`, default 3600)."""
    return settings.MCP_AUTH_SESSION_SECONDS


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def state_for(session_id: str) -> str:
    """The OAuth `state` of a session: a hash of its id (the id itself never leaves the MCP client)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class AuthSession(models.Model):
    """One `oauth_start` login: pending until the callback (or `oauth_authenticate`) binds a user."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        AUTHENTICATED = "authenticated", "Authenticated"
        EXPIRED = "expired", "Expired"
        LOGGED_OUT = "logged_out", "Logged out"

    id = models.CharField(primary_key=True, max_length=64, default=new_session_id, editable=False)
    application = models.ForeignKey("rbac.Application", on_delete=models.CASCADE, related_name="auth_sessions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="mcp_auth_sessions"
    )
    code_verifier = models.CharField(max_length=128, editable=False)
    state = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    authenticated_at = models.DateTimeField(null=True, blank=True)
    # The handshake-era MCP session (Mcp-Session-Id) that called oauth_start: the login binds to it, so later
    # requests of that MCP session act as the user without sending any credential of their own.
    mcp_session_id = models.CharField(max_length=128, blank=True, default="", db_index=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "MCP auth session"

    def __str__(self) -> str:
        return f"{self.application_id} session {self.state[:12]} ({self.current_status})"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self.state:
            self.state = state_for(self.id)
        if self.expires_at is None:
            self.expires_at = self.created_at + timedelta(seconds=session_ttl())
        super().save(*args, **kwargs)

    @property
    def current_status(self) -> str:
        """The status as the tools report it: a pending or authenticated session past its TTL is expired."""
        if self.status in (self.Status.PENDING, self.Status.AUTHENTICATED) and self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.status
