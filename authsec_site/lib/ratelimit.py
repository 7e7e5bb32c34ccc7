"""Rate-limit counters in Redis, shared by every process: the one primitive behind the login throttle
(`accounts.throttle`) and the SDK endpoints' limits (`sdkmgr.throttle`).

A counter counts events on a key within a window, in one MULTI/EXEC (create with expiry if absent,
increment), so concurrent workers never lose a count and a counter never lives without an expiry:
- ``aligned=True``: fixed windows of the clock (`clock`, epoch seconds); the window's number is part of
  the key, and the window ends at the next multiple of `window`.
- ``aligned=False``: the window opens at the key's first event; `restart` opens it again (a lockout).

Keys are cache keys of the current schema (``cache.make_key``: django-tenants prefixes the schema), so a
counter is per tenant unless the caller counts in the public schema; the value is a plain integer that
``cache.get`` reads too. Redis goes through `authsec_site.lib.redis`; its errors propagate, and each caller
decides whether to fail open (and says so in its log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache

from authsec_site.lib import redis

# The clock of aligned windows (epoch seconds): the one place a limit reads the time, so a test moves it
# across a window boundary instead of sleeping until the window rolls over.
clock: Callable[[], float] = time.time
SLACK = 5  # seconds an aligned window's counter outlives the window (clocks of workers differ slightly)


@dataclass(frozen=True)
class Count:
    """A counter's value and the seconds until its window ends (0: the key holds no counter)."""

    count: int
    retry_after: int

    def over(self, limit: int) -> bool:
        """More events than `limit` were counted in this window."""
        return self.count > limit


def hit(key: str, *, window: int, aligned: bool = False) -> Count:
    """Count one event on `key` in its current window of `window` seconds."""
    if aligned:
        now = int(clock())
        number = now // window
        raw = cache.make_key(f"{key}:{number}")
        pipe = redis.sync_client().pipeline(transaction=True)
        pipe.set(raw, 0, ex=window + SLACK, nx=True)
        pipe.incr(raw)
        count = pipe.execute()[1]
        return Count(int(count), (number + 1) * window - now)
    raw = cache.make_key(key)
    pipe = redis.sync_client().pipeline(transaction=True)
    pipe.set(raw, 0, ex=window, nx=True)
    pipe.incr(raw)
    pipe.ttl(raw)
    _, count, ttl = pipe.execute()
    return Count(int(count), max(int(ttl), 0))


def peek(key: str) -> Count:
    """The counter of an unaligned `key` without counting (0 when absent)."""
    raw = cache.make_key(key)
    pipe = redis.sync_client().pipeline(transaction=False)
    pipe.get(raw)
    pipe.ttl(raw)
    value, ttl = pipe.execute()
    return Count(int(value or 0), max(int(ttl), 0))


def restart(key: str, *, window: int) -> None:
    """Start an unaligned key's window again from now (its count stays)."""
    redis.sync_client().expire(cache.make_key(key), window)


def reset(key: str) -> None:
    """Forget an unaligned key's counter."""
    redis.sync_client().delete(cache.make_key(key))
