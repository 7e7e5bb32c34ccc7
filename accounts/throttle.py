"""Login throttling per account and per client IP, audited: counters with a lockout window
(`authsec_site.lib.ratelimit`, per tenant: the keys are the tenant schema's cache keys)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings

import audit
from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import ratelimit

logger = logging.getLogger(__name__)


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


@dataclass(frozen=True)
class Lockout:
    locked: bool
    retry_after: int = 0

    @property
    def message(self) -> str:
        minutes = max(1, (self.retry_after + 59) // 60)
        return f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."


def check(email: str, ip: str | None) -> Lockout:
    """Is this account or this client IP locked out right now? (Fails open if Redis is down: logged.)"""
    try:
        keys = [(_key("account", email), settings.LOGIN_MAX_FAILURES_PER_ACCOUNT)]
        if ip:
            keys.append((_key("ip", ip), settings.LOGIN_MAX_FAILURES_PER_IP))
        for key, limit in keys:
            if ratelimit.peek(key).count >= limit:
                return Lockout(True, settings.LOGIN_LOCKOUT_SECONDS)  # the message names the whole lockout
    except Exception as exc:  # noqa: BLE001
        logger.error("Login throttling unavailable (%s)", type(exc).__name__)
    return Lockout(False)


def record_failure(email: str, ip: str | None) -> None:
    """Count a failed attempt; the attempt that reaches a limit writes an `auth.lockout` event."""
    try:
        for kind, value, limit in (
            ("account", email, settings.LOGIN_MAX_FAILURES_PER_ACCOUNT),
            ("ip", ip, settings.LOGIN_MAX_FAILURES_PER_IP),
        ):
            if not value:
                continue
            key = _key(kind, value)
            count = ratelimit.hit(key, window=settings.LOGIN_LOCKOUT_SECONDS).count
            if count == limit:
                ratelimit.restart(key, window=settings.LOGIN_LOCKOUT_SECONDS)  # locked for the whole lockout
                audit.record(
                    Actor(AuditEvent.ActorType.ANONYMOUS, "", email or "anonymous"),
                    "auth.lockout",
                    outcome=AuditEvent.Outcome.DENY,
                    data={"email": email, "by": kind, "failures": count, "seconds": settings.LOGIN_LOCKOUT_SECONDS},
                )
    except Exception as exc:  # noqa: BLE001
        logger.error("Could not count a failed login (%s)", type(exc).__name__)


def clear(email: str) -> None:
    with contextlib.suppress(Exception):  # best effort: the counter expires anyway
        ratelimit.reset(_key("account", email))
