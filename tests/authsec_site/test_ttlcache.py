"""The one in-process cache shape: bounded, expiring, invalidated at once for every thread."""

from __future__ import annotations

import threading

import pytest

from authsec_site.lib.ttlcache import SWEEP_GRACE, TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_never_holds_more_than_maxsize_and_drops_the_oldest_written_first() -> None:
    cache: TTLCache[int, str] = TTLCache(3)
    for key in range(5):
        cache.set(key, f"v{key}")
    assert len(cache) == 3
    assert [cache.get(key) for key in range(5)] == [None, None, "v2", "v3", "v4"]
    cache.set(2, "again")  # a rewritten entry counts as the newest
    cache.set(5, "v5")
    assert [cache.get(key) for key in (2, 3, 4, 5)] == ["again", None, "v4", "v5"]


def test_an_entry_is_gone_once_its_ttl_has_passed() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(10, 5.0, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2, 60.0)  # its own lifetime
    cache.set("c", 3, None)  # no expiry
    clock.now += 5.0
    assert cache.get("a") == 1 and "a" in cache  # alive up to and including its expiry
    clock.now += 0.001
    assert cache.get("a") is None and "a" not in cache
    assert cache.get("a", "default") == "default"
    assert cache.get_many(["a", "b", "c"], "miss") == ["miss", 2, 3]
    clock.now += 1_000_000
    assert cache.get_many(["b", "c"]) == [None, 3]


def test_an_expired_entry_can_still_be_read_as_stale_with_its_expiry() -> None:
    clock = Clock()
    cache: TTLCache[str, str] = TTLCache(10, 5.0, clock=clock)
    cache.set("tenant", "ref")
    clock.now += 7
    assert cache.get("tenant") is None
    assert cache.get_entry("tenant") == (1005.0, "ref")
    assert cache.get_entry("other") is None


def test_add_keeps_a_live_entry_and_replaces_an_expired_one() -> None:
    clock = Clock()
    cache: TTLCache[str, str] = TTLCache(10, 5.0, clock=clock)
    assert cache.add("k", "first")
    assert not cache.add("k", "second")
    assert cache.get("k") == "first"
    clock.now += 6
    assert cache.add("k", "third")
    assert cache.get("k") == "third"


def test_invalidate_and_clear_take_effect_at_once() -> None:
    cache: TTLCache[str, int] = TTLCache(10)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.invalidate("a")
    cache.invalidate("never-there")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("b") is None


def test_concurrent_writers_never_exceed_the_bound() -> None:
    cache: TTLCache[tuple[int, int], int] = TTLCache(100)
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for i in range(2_000):
                cache.set((thread, i), i)
                cache.get((thread, i - 1))
                if i % 97 == 0:
                    cache.invalidate((thread, i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 100


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError):
        TTLCache(0)


def test_writes_sweep_out_entries_long_expired_so_the_cache_holds_about_what_is_live() -> None:
    """Before, expired entries stayed until `maxsize` pushed them out: a busy cache sat at its cap for good."""
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(10_000, 5.0, clock=clock)
    for key in range(1_000):
        cache.set(key, "old")
    clock.now += 5.0 + SWEEP_GRACE + 1
    for key in range(1_000, 1_500):
        cache.set(key, "new")
    assert len(cache) == 500  # the 1,000 old ones went, two per write
    assert cache.get_entry(1_499) is not None


def test_an_entry_is_kept_for_stale_reads_for_the_grace_after_its_expiry() -> None:
    clock = Clock()
    cache: TTLCache[str, str] = TTLCache(10, 5.0, clock=clock)
    cache.set("tenant", "ref")
    clock.now += 5.0 + SWEEP_GRACE - 1
    cache.set("other", "x")
    assert cache.get_entry("tenant") == (1005.0, "ref")
