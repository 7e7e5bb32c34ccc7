"""The one door to Redis: every Redis connection of this process is made here, with redis-py (and hiredis,
which redis-py uses to parse replies whenever it is installed, as the lock installs it).

- `sync_client()`: one client over one connection pool per Redis URL. Django's cache uses the same pool
  and clients (`RedisCache` with `SharedPool`, named in `CACHES`), so the cache, cache coherence, MCP
  notifications and rate limits share one set of connections and one set of timeouts.
- `async_client()`: one asyncio client per event loop (asyncio connections belong to the loop that made
  them), for the MCP endpoint's reads on the event loop and its pub/sub listeners.
- `open_protocol()`, `pack()` and `reply_reader()`: for the cache mirror's subscription, which reads its
  socket in an asyncio protocol callback (`mcp_endpoint.mirror` says why), connected with redis-py's
  settings for the URL, sending commands as redis-py packs them and parsing with hiredis.

Timeouts are short (`TIMEOUT`): every caller has a fallback when Redis is slow or away. Celery's broker and
result connections are kombu's and Celery's own (`CELERY_BROKER_URL`), not made here.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

import hiredis
import redis
import redis.asyncio
from django.conf import settings
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool, DefaultParser

TIMEOUT = 2.0
ASYNC_CONNECTIONS = 50  # per event loop and URL
_sync_clients: dict[str, redis.Redis] = {}
# event loop → URL → client, keyed by the loop itself: a later loop may reuse an ended loop's id().
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _options() -> dict[str, Any]:
    return {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT, "health_check_interval": 30}


def sync_client(url: str | None = None) -> redis.Redis:
    """This process's synchronous client for `url` (default ``settings.REDIS_URL``); thread-safe, fork-safe
    (redis-py's pool replaces its connections in a child process)."""
    url = url or settings.REDIS_URL
    client = _sync_clients.get(url)
    if client is None:
        with _lock:
            client = _sync_clients.get(url)
            if client is None:
                pool = ConnectionPool.from_url(url, parser_class=DefaultParser, **_options())
                client = _sync_clients[url] = redis.Redis(connection_pool=pool)
    return client


class SharedPool:
    """Django's ``RedisCache`` ``pool_class``: hands the cache the pool of `sync_client` for its URL (the
    door's options and hiredis parser; options given in ``CACHES`` are not used)."""

    @classmethod
    def from_url(cls, url: str, **_options: Any) -> ConnectionPool:
        return sync_client(url).connection_pool


class _CacheClient(RedisCacheClient):
    """Django's Redis cache client, handing out the door's client for the server (whose pool `SharedPool` gives
    the cache) instead of building a new redis-py client for every cache operation, as Django does: building
    one costs more than the GET it sends."""

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        return sync_client(self._servers[self._get_connection_pool_index(write)])


class RedisCache(DjangoRedisCache):
    """Django's ``RedisCache`` over the door's pool (`SharedPool`) and clients (`_CacheClient`)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _CacheClient


def async_client(url: str | None = None) -> redis.asyncio.Redis:
    """The asyncio client of the running event loop for `url` (default ``settings.REDIS_URL``)."""
    url = url or settings.REDIS_URL
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)  # (a command on a connection Redis dropped is sent again on a new one)
    if clients is None:
        clients = _async_clients[loop] = {}
    client = clients.get(url)
    if client is None:
        # Concurrent commands beyond the pool's connections wait for one (up to TIMEOUT) instead of failing.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=ASYNC_CONNECTIONS, timeout=TIMEOUT, retry=AsyncRetry(NoBackoff(), 1), **_options()
        )
        client = clients[url] = redis.asyncio.Redis(connection_pool=pool)
    return client


def new_async_client(url: str | None = None) -> redis.asyncio.Redis:
    """A client of its own (its own connections), for a long-lived subscription that must not hold one of the
    shared client's; the caller closes it (``await client.aclose()``)."""
    return redis.asyncio.Redis.from_url(url or settings.REDIS_URL, socket_connect_timeout=TIMEOUT)


class Unsupported(Exception):
    """A Redis URL `open_protocol` does not speak (TLS, unix socket)."""


async def open_protocol(
    factory: Callable[[dict[str, Any]], asyncio.Protocol], url: str | None = None, timeout: float = 5.0
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    """A plain TCP connection to `url` (default ``settings.REDIS_URL``) driven by the protocol that
    ``factory(connection_params(url))`` makes; the protocol authenticates itself (`pack`, `reply_reader`)."""
    params = connection_params(url)
    if params["ssl"] or "path" in params:
        raise Unsupported("TLS or unix socket")
    loop = asyncio.get_running_loop()
    host, port = params.get("host", "localhost"), params.get("port", 6379)
    return await asyncio.wait_for(loop.create_connection(lambda: factory(params), host, port), timeout)


def connection_params(url: str | None = None) -> dict[str, Any]:
    """How redis-py connects for `url`: ``host``, ``port``, ``db``, ``username``, ``password``, and whether it
    is TLS (``ssl``) or a unix socket (``path``)."""
    pool = redis.asyncio.ConnectionPool.from_url(url or settings.REDIS_URL)
    params = dict(pool.connection_kwargs)
    params["ssl"] = pool.connection_class is redis.asyncio.SSLConnection
    return params


def pack(*args: str | bytes) -> bytes:
    """One command in the Redis protocol, as redis-py writes it."""
    return b"".join(redis.connection.Connection().pack_command(*args))


def reply_reader() -> Any:
    """A Redis reply parser (hiredis's `Reader`): ``feed(data)``, then ``gets()`` until it returns False. Error
    replies come out as `ReplyError` instances; a malformed stream raises `ProtocolError`."""
    return hiredis.Reader()


ReplyError = hiredis.ReplyError
ProtocolError = hiredis.ProtocolError
