"""Per-client rate limits of the SDK endpoints (Redis fixed windows of one minute, shared by every worker).

Two budgets per client id: every call (`SDKMGR_RATE_LIMIT_PER_MINUTE`) and logins started
(`SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE`, each creates an auth session row). If Redis is down the limit is not
enforced (logged), like the login throttle: refusing every SDK call would take the tools down with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)
WINDOW = 60
# The windows' clock (epoch seconds): the one place the throttle reads the time, so a test can move it
# across a window boundary instead of sleeping until the minute rolls over.
clock: Callable[[], float] = time.time


def limit_of(bucket: str) -> int:
    return settings.SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE if bucket == "login" else settings.SDKMGR_RATE_LIMIT_PER_MINUTE


def hit(client_id: str, bucket: str) -> int:
    """Count one call; returns 0 when allowed, else the seconds until the window ends."""
    now = int(clock())
    window = now // WINDOW
    key = f"sdkmgr:rate:{bucket}:{client_id}:{window}"
    try:
        with schema_context("public"):  # one counter per client, whatever schema the connection is in
            cache.add(key, 0, timeout=WINDOW + 5)
            count = cache.incr(key)
    except Exception as exc:  # noqa: BLE001
        logger.error("SDK rate limiting unavailable (%s)", type(exc).__name__)
        return 0
    if count > limit_of(bucket):
        return max(1, (window + 1) * WINDOW - now)
    return 0
