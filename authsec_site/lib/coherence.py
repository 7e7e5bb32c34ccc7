"""Cache keys that processes mirror in memory: every write is stored in Redis and announced in one step.

The MCP endpoint answers most requests without a Redis round trip by keeping a copy of a few small keys
(the configuration and RBAC version tokens, the revoked-token markers) that these announcements keep
current (`mcp_endpoint.mirror`). For the copy to be right, every write of such a key goes through
`set_and_announce`: SET and PUBLISH in one MULTI/EXEC, so Redis never holds a new value whose announcement
was not sent, and no announcement names a value that was not stored.

An announcement is JSON ``{"k": <raw Redis key>, "v": <value>, "e": <expiry, Unix seconds, or null>}`` on
`channel()`. Pub/sub channels are shared by every database of a Redis server, so the channel name carries
the database number and the cache key prefix (two deployments on one Redis do not hear each other).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import transaction
from django_tenants.utils import schema_context

from authsec_site.lib import redis

logger = logging.getLogger(__name__)
_serializer = RedisSerializer()


def channel() -> str:
    path = urlsplit(settings.REDIS_URL).path.strip("/")
    return f"{cache.key_prefix or 'cache'}:mirror:db{path or '0'}"


def set_and_announce(key: str, value: str | int, timeout: int | None = None) -> None:
    """Set the current schema's cache `key` (as `cache.set` would store it) and announce the new value.

    Raises on a Redis error; then nothing was written and nothing announced."""
    raw_key = cache.make_key(key)
    expires = None if timeout is None else time.time() + timeout
    message = json.dumps({"k": raw_key, "v": value, "e": expires})
    pipe = redis.sync_client().pipeline(transaction=True)
    pipe.set(raw_key, _serializer.dumps(value), ex=timeout)
    pipe.publish(channel(), message)
    pipe.execute()


# Inside `read_together(...)`: the version tokens read in one MGET, by raw Redis key.
_read_together: ContextVar[dict[str, str] | None] = ContextVar("coherence_read_together", default=None)


@contextmanager
def read_together(*keys: str) -> Iterator[None]:
    """Within: the current schema's version tokens at `keys` are read from Redis in one round trip (MGET) up front,
    and `version_token` answers them from that read. For a request that needs several version tokens and changes
    none of them (the token endpoint: the OAuth issuance copies and the RBAC grants). A Redis error leaves each
    reader to read (and fail) on its own, as outside the block."""
    try:
        found = cache.get_many(keys)
    except Exception:  # noqa: BLE001 - each reader meets the error itself and reads its source of truth
        found = {}
    reset = _read_together.set({cache.make_key(key): value for key, value in found.items() if value is not None})
    try:
        yield
    finally:
        _read_together.reset(reset)


def version_token(key: str) -> str:
    """The current schema's version token at cache `key`, made on first use (one process wins a race). Caches
    that must not outlive a change keep what they read under this token and drop it when the token moves.

    Raises on a Redis error (the caller then reads its source of truth)."""
    together = _read_together.get()
    if together:
        version = together.get(cache.make_key(key))
        if version is not None:
            return version
    version = cache.get(key)
    if version is None:
        cache.add(key, uuid.uuid4().hex, timeout=None)
        version = cache.get(key)
    return version


def version_or_none(key: str, *, what: str, schema: str | None = None) -> str | None:
    """The version token at `key` (of `schema`, else of the current schema: no schema switch on the hot path) for a
    per-process cache of `what`; None when Redis fails (logged), and the caller then reads its source of truth."""
    try:
        if schema is None:
            return version_token(key)
        with schema_context(schema):
            return version_token(key)
    except Exception as exc:  # noqa: BLE001 - Redis down: read the database
        logger.warning("%s cache unavailable (%s); reading the database", what, type(exc).__name__)
        return None


def move_after_commit(key: str, *, schema: str, what: str) -> None:
    """Once the current transaction commits, give `schema`'s version token at `key` a new value, so every process
    drops the copies of `what` it kept under the old one. A Redis error is logged: the copies' TTL then bounds how
    long they outlive the change."""

    def move() -> None:
        try:
            with schema_context(schema):
                cache.set(key, uuid.uuid4().hex, timeout=None)
        except Exception as exc:  # noqa: BLE001 - see above
            logger.error("Could not invalidate the %s cache (%s)", what, type(exc).__name__)

    transaction.on_commit(move)
