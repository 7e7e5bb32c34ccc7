"""Removing the current schema's expired Django sessions (dashboard and login sessions): what `clearsessions`
does, in batches. Each schema (the platform's and every tenant's) has its own session table."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from authsec_site.lib.batches import delete_in_batches

DATABASE_ENGINES = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")


def clear_expired_sessions(*, now: datetime | None = None) -> int:
    """Delete sessions whose expiry date has passed (Django refuses them already); returns how many went."""
    if settings.SESSION_ENGINE not in DATABASE_ENGINES:
        return 0  # cache or cookie sessions expire on their own
    return delete_in_batches(Session.objects.filter(expire_date__lt=now or timezone.now()), settings.CLEANUP_BATCH_SIZE)
