"""`TTLCache`: the one in-process cache shape, a bounded map whose entries expire.

Invariants: it never holds more than `maxsize` entries (a write into a full cache drops the oldest
written entry); `get` never returns an entry past its expiry; `clear` and `invalidate` take effect for
every thread at once. Each write also drops up to `SWEEP_PER_WRITE` entries at the old end that expired more
than `SWEEP_GRACE` ago, so a cache whose entries expire holds about what is live, not `maxsize` entries of
which most expired long ago (docs/benchmarks.md, "Memory"). Reads take no lock (one dict read is atomic
under the GIL), so a hot path pays one dict lookup and one comparison; writes take the lock.

Hand-written rather than `cachetools.TTLCache`: that one needs a lock around every read (reads reorder
it), has no per-entry expiry and no stale read, which the MCP endpoint's tenant cache needs (an expired
tenant is served while it is re-read, `mcp_endpoint.bearer`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_ABSENT: Any = object()
_FOREVER = float("inf")
SWEEP_PER_WRITE = 2  # > 1: the sweep outpaces the writes, so expired entries never accumulate
SWEEP_GRACE = 60.0  # seconds past its expiry an entry is still kept for a stale read (`get_entry`)


class TTLCache(Generic[K, V]):
    """At most `maxsize` entries, each living `ttl` seconds (None: until evicted or invalidated) unless a
    write gives it its own lifetime. `clock` is monotonic seconds (tests pass their own)."""

    def __init__(self, maxsize: int, ttl: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize, self.ttl, self.clock = maxsize, ttl, clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: Any = None) -> V | Any:
        """The value, or `default` when absent or expired."""
        hit = self._entries.get(key)
        if hit is None or (hit[0] != _FOREVER and hit[0] < self.clock()):
            return default
        return hit[1]

    def get_many(self, keys: Iterable[K], default: Any = None) -> list[V | Any]:
        """`get` of each key, with one clock read."""
        now = self.clock()
        entries = self._entries
        values = []
        for key in keys:
            hit = entries.get(key)
            values.append(default if hit is None or hit[0] < now else hit[1])
        return values

    def get_entry(self, key: K) -> tuple[float, V] | None:
        """(expiry on `clock`, value), expired or not: for callers that may serve a stale value a little longer."""
        return self._entries.get(key)

    def __contains__(self, key: object) -> bool:
        hit = self._entries.get(key)  # type: ignore[call-overload]
        return hit is not None and hit[0] >= self.clock()

    def __len__(self) -> int:
        return len(self._entries)

    def set(self, key: K, value: V, ttl: float | None = _ABSENT) -> V:
        """Store `value` for `ttl` seconds (default: the cache's `ttl`); returns `value`."""
        with self._lock:
            self._store(key, value, ttl)
        return value

    def add(self, key: K, value: V, ttl: float | None = _ABSENT) -> bool:
        """Store `value` only if the key holds no live entry; True if stored."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] >= self.clock():
                return False
            self._store(key, value, ttl)
        return True

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def invalidate_where(self, predicate: Callable[[K], bool]) -> None:
        """Drop every entry whose key satisfies `predicate`."""
        with self._lock:
            for key in [key for key in self._entries if predicate(key)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _store(self, key: K, value: V, ttl: float | None) -> None:
        """Write one entry (lock held); a full cache first drops its oldest written entry."""
        ttl = self.ttl if ttl is _ABSENT else ttl
        now = self.clock()
        expires = _FOREVER if ttl is None else now + ttl
        entries = self._entries
        entries.pop(key, None)  # a rewritten entry counts as the newest
        while len(entries) >= self.maxsize:
            entries.popitem(last=False)
        for _ in range(SWEEP_PER_WRITE):  # the oldest written entries expire first (one TTL per cache, mostly)
            oldest = next(iter(entries), _ABSENT)
            if oldest is _ABSENT or entries[oldest][0] + SWEEP_GRACE >= now:
                break
            del entries[oldest]
        entries[key] = (expires, value)
