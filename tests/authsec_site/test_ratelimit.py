"""The rate-limit primitive against the real Redis of the test run: counts at the limit's boundary, windows
that roll over on the injected clock, a lockout window that restarts."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from authsec_site.lib import ratelimit
from authsec_site.lib import redis as redis_door

WINDOW = 60


@pytest.fixture
def key() -> str:
    return f"test:rate:{uuid.uuid4().hex}"


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """`ratelimit.clock` pinned to the first second of a window; tests move it."""
    current = [1_900_000_020.0 // WINDOW * WINDOW]
    monkeypatch.setattr(ratelimit, "clock", lambda: current[0])
    return current


def test_an_aligned_window_allows_the_limit_and_refuses_the_next(key: str, now: list[float]) -> None:
    limit = 3
    counts = [ratelimit.hit(key, window=WINDOW, aligned=True) for _ in range(limit + 1)]
    assert [count.count for count in counts] == [1, 2, 3, 4]
    assert [count.over(limit) for count in counts] == [False, False, False, True]
    assert counts[-1].retry_after == WINDOW  # at the window's first second: all of it is left


def test_an_aligned_window_rolls_over_at_its_boundary(key: str, now: list[float]) -> None:
    for _ in range(3):
        ratelimit.hit(key, window=WINDOW, aligned=True)
    now[0] += WINDOW - 1  # the window's last second
    last = ratelimit.hit(key, window=WINDOW, aligned=True)
    assert (last.count, last.retry_after) == (4, 1)
    now[0] += 1  # the next window starts empty
    first = ratelimit.hit(key, window=WINDOW, aligned=True)
    assert (first.count, first.retry_after) == (1, WINDOW)


def test_an_aligned_counter_expires_with_its_window(key: str, now: list[float]) -> None:
    ratelimit.hit(key, window=WINDOW, aligned=True)
    raw = cache.make_key(f"{key}:{int(now[0]) // WINDOW}")
    ttl = redis_door.sync_client().ttl(raw)
    assert WINDOW < ttl <= WINDOW + ratelimit.SLACK
    assert cache.get(f"{key}:{int(now[0]) // WINDOW}") == 1  # a plain integer the cache reads too


def test_an_unaligned_window_opens_at_the_first_event_and_restarts(key: str) -> None:
    assert ratelimit.peek(key) == ratelimit.Count(0, 0)
    first = ratelimit.hit(key, window=30)
    assert first.count == 1 and 28 <= first.retry_after <= 30
    redis_door.sync_client().expire(cache.make_key(key), 5)  # the window runs out…
    assert ratelimit.hit(key, window=30).retry_after <= 5  # …a later event does not extend it
    ratelimit.restart(key, window=900)  # …unless the caller restarts it (a lockout)
    seen = ratelimit.peek(key)
    assert seen.count == 2 and 898 <= seen.retry_after <= 900
    ratelimit.reset(key)
    assert ratelimit.peek(key).count == 0


def test_counters_are_per_schema(key: str) -> None:
    from django_tenants.utils import schema_context

    with schema_context("public"):
        ratelimit.hit(key, window=30)
        ratelimit.hit(key, window=30)
    with schema_context("tenant_acme"):
        assert ratelimit.hit(key, window=30).count == 1
        ratelimit.reset(key)
    with schema_context("public"):
        assert ratelimit.peek(key).count == 2
        ratelimit.reset(key)
