"""A small pipelined Redis client for the MCP endpoint's hot path: one ``MGET`` per request.

Each MCP request reads the configuration and RBAC version tokens and the token's revocation flag in one
round trip (`mcp_endpoint.auth.resolve_cached`). Through redis-py's asyncio client that round trip costs more
CPU than everything else the endpoint adds (connection pool, retry wrapper, command packing, the pure-Python
parser). This client keeps one connection per event loop, pipelines concurrent commands on it (RESP replies
come back in order) and parses RESP2 itself. It is used only where a failure is harmless: any error raises,
and the caller falls back to the regular path (Django's Redis cache, which also handles Redis being down).
Plain ``redis://`` URLs only (``rediss://`` → `Unsupported`, so the caller keeps the regular client).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

TIMEOUT = 2.0


class Unsupported(Exception):
    """This URL needs a feature the small client does not have (TLS, unix sockets)."""


class ReplyError(Exception):
    """Redis answered with an error reply."""


class Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


def encode(*args: str | bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buffer: bytes | bytearray, pos: int = 0) -> tuple[Any, int]:
    """One RESP2 reply from `buffer` at `pos`: (value, position after it); raises `Incomplete`."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    kind, line = buffer[pos : pos + 1], bytes(buffer[pos + 1 : end])
    after = end + 2
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            raise Incomplete
        return bytes(buffer[after : after + length]), after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse(buffer, after)
            items.append(item)
        return items, after
    if kind == b"+":
        return line.decode(), after
    if kind == b":":
        return int(line), after
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), after
    raise ConnectionError(f"Unexpected Redis reply type {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        try:
            while self.waiters:
                value, pos = parse(self.buffer, pos)
                waiter = self.waiters.popleft()
                if not waiter.done():  # a caller that timed out still owns its place in the pipeline
                    if isinstance(value, ReplyError):
                        waiter.set_exception(value)
                    else:
                        waiter.set_result(value)
        except Incomplete:
            pass
        except (ValueError, ConnectionError) as exc:
            self._fail(ConnectionError(f"Bad reply from Redis: {exc}"))
            return
        del self.buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("Redis connection lost"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class FastRedis:
    """One pipelined connection; create one per event loop (`asyncio` objects belong to their loop)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise Unsupported(parts.scheme)
        self.host, self.port = parts.hostname, parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    @property
    def auth(self) -> tuple[str, ...] | None:
        """The arguments of ``AUTH`` for this URL (None: no password)."""
        if self.password is None:
            return None
        return (self.username, self.password) if self.username else (self.password,)

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        async with self._connecting:
            if self._protocol is None or self._protocol.closed:
                loop = asyncio.get_running_loop()
                async with asyncio.timeout(self.timeout):
                    _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
                    self._protocol = protocol  # type: ignore[assignment]
                    if self.auth is not None:
                        await self._send(protocol, "AUTH", *self.auth)  # type: ignore[arg-type]
                    if self.db:
                        await self._send(protocol, "SELECT", str(self.db))  # type: ignore[arg-type]
            return self._protocol  # type: ignore[return-value]

    async def _send(self, protocol: _Protocol, *args: str | bytes) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.waiters.append(waiter)
        assert protocol.transport is not None
        protocol.transport.write(encode(*args))
        return await waiter

    async def execute(self, *args: str | bytes) -> Any:
        async with asyncio.timeout(self.timeout):
            protocol = await self._connection()
            return await self._send(protocol, *args)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return await self.execute("MGET", *keys)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
