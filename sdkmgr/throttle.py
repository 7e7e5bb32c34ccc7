"""Per-client rate limits of the SDK endpoints: fixed windows of one minute (`authsec_site.lib.ratelimit`,
shared by every worker).

Two budgets per client id: every call (`SDKMGR_RATE_LIMIT_PER_MINUTE`) and logins started
(`SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE`, each creates an auth session row). If Redis is down the limit is not
enforced (logged), like the login throttle: refusing every SDK call would take the tools down with it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_tenants.utils import schema_context

from authsec_site.lib import metrics, ratelimit

logger = logging.getLogger(__name__)
WINDOW = 60


def limit_of(bucket: str) -> int:
    return settings.SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE if bucket == "login" else settings.SDKMGR_RATE_LIMIT_PER_MINUTE


def hit(client_id: str, bucket: str) -> int:
    """Count one call; returns 0 when allowed, else the seconds until the window ends."""
    try:
        with schema_context("public"):  # one counter per client, whatever schema the connection is in
            counted = ratelimit.hit(f"sdkmgr:rate:{bucket}:{client_id}", window=WINDOW, aligned=True)
    except Exception as exc:  # noqa: BLE001
        logger.error("SDK rate limiting unavailable (%s)", type(exc).__name__)
        return 0
    if not counted.over(limit_of(bucket)):
        return 0
    metrics.throttled(f"sdk_{bucket}")
    return max(1, counted.retry_after)
