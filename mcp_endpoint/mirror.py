"""An in-memory copy of the few Redis keys every MCP request reads, kept current by Redis pub/sub.

Every MCP request needs the tenant's configuration and RBAC version tokens and, with a bearer token, the
token's revocation marker (`mcp_endpoint.bearer`). Reading them from Redis on each request was the largest
cost the endpoint added to a tool call (a loopback round trip: two system calls and a wake-up of Redis).
Instead each process keeps a `Mirror` of those keys:

- Every write of such a key is `authsec_site.lib.coherence.set_and_announce` (SET and PUBLISH in one
  MULTI/EXEC), and the mirror applies the announcement as soon as its bytes arrive: in the protocol's
  ``data_received``, on the event loop, before any request task that arrived in the same or a later
  event-loop turn runs. The writer's PUBLISH has returned before its own HTTP response is sent, so a
  client's next request after a dashboard change sees the change (the "next request" rule of the RBAC
  design), exactly as with a read per request. redis-py's pub/sub reads in a task, which runs a turn later
  and possibly after a request task of that turn; so the subscription is a protocol of its own, with
  redis-py's connection settings, command packing and hiredis's parser (`authsec_site.lib.redis`).
- Keys the mirror does not hold are read with one MGET (`fill`), and kept only if no announcement for
  them arrived meanwhile and the subscription is the one that was live when the read was sent.
- The mirror answers only while its subscription is confirmed. When the connection drops it forgets
  everything and the endpoint reads Redis per request again until it has resubscribed (whatever was
  announced in between is missed, so nothing held from before may be trusted).
- Each entry lives at most `ENTRY_TTL` seconds (and never past the key's own expiry), a bound on any
  error no one foresaw; re-reading a few keys every few seconds costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from authsec_site.lib import redis
from authsec_site.lib.background import background
from authsec_site.lib.ttlcache import TTLCache

logger = logging.getLogger(__name__)
MISSING: Any = object()
ENTRY_TTL = 5.0
MAX_ENTRIES = 50_000
RETRY_MAX = 10.0
CLIENT_NAME = "authsec-mirror"


class _Subscription(asyncio.Protocol):
    """One SUBSCRIBE connection: announcements go straight to the mirror as their bytes arrive."""

    def __init__(self, mirror: Mirror, channel: bytes, params: dict[str, Any]) -> None:
        self.mirror, self.channel, self.params = mirror, channel, params
        self.transport: asyncio.Transport | None = None
        self.reader = redis.reply_reader()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        username, password = self.params.get("username"), self.params.get("password")
        commands = b""
        if password is not None:
            commands += redis.pack("AUTH", *((username, password) if username else (password,)))
        commands += redis.pack("CLIENT", "SETNAME", f"{CLIENT_NAME}-{os.getpid()}")  # so operators can tell it apart
        transport.write(commands + redis.pack("SUBSCRIBE", self.channel))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while not self.lost.done() and (reply := self.reader.gets()) is not False:
                self._handle(reply)
        except redis.ProtocolError as exc:
            self._close(ConnectionError(f"Bad reply from Redis: {exc}"))

    def _handle(self, reply: Any) -> None:
        if isinstance(reply, redis.ReplyError):
            self._close(ConnectionError(f"Redis refused the subscription: {reply}"))
        elif isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            self.mirror.apply(reply[2])
        elif isinstance(reply, list) and len(reply) == 3 and reply[0] == b"subscribe" and reply[1] == self.channel:
            self.mirror.went_live()

    def _close(self, exc: Exception) -> None:
        self.mirror.went_dark()  # at once, not when the transport reports the close
        if self.transport is not None:
            self.transport.close()
        if not self.lost.done():
            self.lost.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mirror.went_dark()
        if not self.lost.done():
            self.lost.set_exception(exc or ConnectionError("Redis closed the subscription"))


class Mirror:
    """Raw Redis key → value, for keys written with `set_and_announce`; only trusted while `live`."""

    def __init__(self, url: str, channel: str) -> None:
        self._url, self._channel = url, channel.encode()
        self._entries: TTLCache[str, Any] = TTLCache(MAX_ENTRIES, ENTRY_TTL)
        self.live = False
        self.epoch = 0  # changes whenever the subscription starts or ends

    def get(self, key: str) -> Any:
        """The mirrored value (None: the key is absent in Redis), or `MISSING`: read it from Redis."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        """`get` of each key, with one clock read."""
        if not self.live:
            return [MISSING] * len(keys)
        return self._entries.get_many(keys, MISSING)

    def fill(self, epoch: int, key: str, value: Any) -> None:
        """Keep `value`, read from Redis by a request sent while the mirror was live in `epoch`, unless an
        announcement for the key arrived since (it is newer) or the subscription changed."""
        if epoch != self.epoch or not self.live:
            return
        self._entries.add(key, value)

    def apply(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
            key, value, expires = message["k"], message["v"], message["e"]
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed cache announcement")
            return
        ttl = ENTRY_TTL if expires is None else min(ENTRY_TTL, float(expires) - time.time())
        self._entries.set(key, value, ttl)

    def went_live(self) -> None:
        self._entries.clear()
        self.epoch += 1
        self.live = True

    def went_dark(self) -> None:
        self.live = False
        self.epoch += 1
        self._entries.clear()

    async def _subscribe_once(self) -> None:
        _, protocol = await redis.open_protocol(lambda params: _Subscription(self, self._channel, params), self._url)
        assert isinstance(protocol, _Subscription)
        try:
            await protocol.lost
        finally:
            if protocol.transport is not None:
                protocol.transport.close()

    async def _run(self) -> None:
        delay = 0.2
        while True:
            started = time.monotonic()
            try:
                await self._subscribe_once()
            except asyncio.CancelledError:
                raise
            except redis.Unsupported:
                logger.info("Cache mirror off for this Redis URL (TLS or unix socket): reading Redis per request")
                return
            except Exception as exc:  # noqa: BLE001 - Redis away: requests read Redis (or the database) meanwhile
                if time.monotonic() - started > 30:
                    delay = 0.2  # it had been up for a while: retry soon
                logger.warning("Cache mirror lost its Redis subscription (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Mirror]:
        try:
            async with background(self._run()):
                yield self
        finally:
            self.went_dark()
