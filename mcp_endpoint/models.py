"""Models of the hosted MCP endpoint: the seed's login-tool auth sessions (database only, never in memory)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def session_ttl() -> int:
    """Seconds an authenticated auth session lives after its confirmation (`MCP_AUTH_SESSION_SECONDS`, 3600)."""
    return settings.MCP_AUTH_SESSION_SECONDS


def pending_ttl() -> int:
    """Seconds a started session may stay pending (`MCP_AUTH_PENDING_SECONDS`, default 600, at most 600)."""
    return min(settings.MCP_AUTH_PENDING_SECONDS, 600)


# RFC 8628 §6.1: 20 consonants (no vowels: no words; no look-alikes), 8 characters ≈ 34.5 bits, shown XXXX-XXXX.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
USER_CODE_ATTEMPTS = 5  # wrong codes typed before a pending session is denied (no guessing)


def new_user_code() -> str:
    code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(typed: str) -> str:
    """The code as compared: upper case, only alphabet characters (dashes, spaces, lower case are forgiven)."""
    return "".join(char for char in typed.upper() if char in USER_CODE_ALPHABET)[: USER_CODE_LENGTH * 2]


def user_code_digest(code: str) -> str:
    """The stored form of a user code: SHA-256 of its normalized characters (the code itself is never stored)."""
    return hashlib.sha256(normalize_user_code(code).encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def state_for(session_id: str) -> str:
    """The OAuth `state` of a session: a hash of its id (the id itself never leaves the MCP client)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class AuthSession(models.Model):
    """One `oauth_start` login: pending until its user confirms it on the confirmation page (after the callback)
    or `oauth_authenticate` binds a token. `user` is set only when bound; a bound or denied session never
    changes user again. Pending lives `pending_ttl()` (≤ 10 min), authenticated `session_ttl()` from binding."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        AUTHENTICATED = "authenticated", "Authenticated"
        EXPIRED = "expired", "Expired"
        LOGGED_OUT = "logged_out", "Logged out"
        DENIED = "denied", "Denied"

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
    # Shown on the confirmation page so the user can tell whether they started this login.
    started_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    started_user_agent = models.CharField(max_length=255, blank=True, default="", editable=False)
    user_code_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    code_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    # The user whose token the callback got: only they may confirm (the callback itself never binds).
    callback_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False
    )
    callback_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "MCP auth session"

    def __str__(self) -> str:
        return f"{self.application_id} session {self.state[:12]} ({self.current_status})"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self.state:
            self.state = state_for(self.id)
        if self.expires_at is None:
            self.expires_at = self.created_at + timedelta(seconds=pending_ttl())
        super().save(*args, **kwargs)

    @property
    def current_status(self) -> str:
        """The status as the tools report it: a pending or authenticated session past its TTL is expired."""
        if self.status in (self.Status.PENDING, self.Status.AUTHENTICATED) and self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.status
