"""Handshake-era MCP sessions of this process, and ``notifications/tools/list_changed`` when a login changes.

Protocol versions 2025-06-18 and 2025-11-25 keep a session (``Mcp-Session-Id``) whose transport lives in the
process that opened it (the `mcp` package's session manager; route a session's requests to one worker).
`LiveSessions` remembers, per session of this process, the endpoint (tenant, application) that opened it, so
a session id presented at another endpoint answers 404 like an unknown one, and the session object needed to
push a notification on the session's standalone stream.

What changes a session's tools happens elsewhere: the browser callback of ``oauth_start``, a logout, a revoke
in the dashboard, in whichever process serves that request. Those publish the SHA-256 of the MCP session id
on the Redis channel `CHANNEL` after commit (`tools_changed`); every endpoint process listens (`listen`) and
the one holding the session sends the notification. A change that concerns every session of an endpoint (a
tool held or released by tool pinning) is published as ``endpoint:<tenant>/<app>`` (`endpoint_changed`).
Delivery is best effort: what a client sees is decided on each request from the database, so a lost
notification only delays the client's refresh.

Memory: an entry holds a request's `ServerSession` (with that request's context: `mcp` builds one per request), so
it is forgotten when its client ends the session (a DELETE), and swept once idle past the session manager's
timeout (at most every `SWEEP_EVERY` seconds, on the next session opened): a process keeps no ended session. Before,
entries were swept only at `MAX_SESSIONS`, each holding its ended session's `ServerSession` and request: the web
process grew with every session ever opened (docs/benchmarks.md, "Memory").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from authsec_site.lib import redis

logger = logging.getLogger(__name__)
CHANNEL = "authsec:mcp:tools_changed"
ENDPOINT_PREFIX = "endpoint:"
ALL_APPS = "*"
MAX_SESSIONS = 50_000
SWEEP_EVERY = 60.0  # seconds between sweeps of the sessions idle past the session manager's timeout


def digest(mcp_session_id: str) -> str:
    return hashlib.sha256(mcp_session_id.encode()).hexdigest()


@dataclass
class _Entry:
    tenant: str
    app: str
    seen: float
    # A ServerSession of this MCP session (its first tools request's): notifications not tied to a request go
    # out on the session's standalone stream, which every request's ServerSession shares.
    session: Any = None


class LiveSessions:
    """MCP sessions opened in this process: their endpoint, last use and a notification handle.

    Keyed by the session id (the per-request checks cost no hashing); published notices name a session by the
    SHA-256 of its id, kept in a second index."""

    def __init__(self, idle_seconds: float) -> None:
        self._entries: dict[str, _Entry] = {}
        self._by_digest: dict[str, str] = {}
        self._idle = idle_seconds
        self._swept = time.monotonic()

    def opened(self, mcp_session_id: str, tenant: str, app: str) -> None:
        now = time.monotonic()
        if len(self._entries) >= MAX_SESSIONS or now - self._swept >= SWEEP_EVERY:
            self._prune(now)
        while len(self._entries) >= MAX_SESSIONS:  # all in use: the longest idle goes (its requests still work)
            self._forget(min(self._entries, key=lambda key: self._entries[key].seen))
        self._entries[mcp_session_id] = _Entry(tenant, app, now)
        self._by_digest[digest(mcp_session_id)] = mcp_session_id

    def belongs(self, mcp_session_id: str, tenant: str, app: str) -> bool:
        """False when the session was opened here at another endpoint (it must then answer 404)."""
        entry = self._entries.get(mcp_session_id)
        if entry is None:
            return True  # not opened in this process: the session manager answers for it
        entry.seen = time.monotonic()
        return entry.tenant == tenant and entry.app == app

    def attach(self, mcp_session_id: str, session: Any) -> None:
        entry = self._entries.get(mcp_session_id)
        if entry is not None and entry.session is None:
            entry.session = session

    def closed(self, mcp_session_id: str) -> None:
        """The client ended the session (a DELETE the session manager accepted)."""
        self._forget(mcp_session_id)

    async def notify(self, key: str) -> bool:
        """Send ``notifications/tools/list_changed`` on the session with id digest `key`, if it lives here."""
        mcp_session_id = self._by_digest.get(key)
        entry = self._entries.get(mcp_session_id) if mcp_session_id is not None else None
        if entry is None or entry.session is None:
            return False
        try:
            await entry.session.send_tool_list_changed()
        except Exception as exc:  # noqa: BLE001 - the session ended: forget it
            logger.debug("tools/list_changed not delivered (%s)", type(exc).__name__)
            self._forget(mcp_session_id)  # type: ignore[arg-type]
            return False
        return True

    async def notify_endpoint(self, tenant: str, app: str) -> int:
        """Send ``notifications/tools/list_changed`` on every session of this process at the endpoint of `tenant`
        and `app` (`ALL_APPS`: every application of the tenant); returns how many were notified."""
        sessions = [
            (key, entry.session)
            for key, entry in list(self._entries.items())
            if entry.tenant == tenant and app in (ALL_APPS, entry.app) and entry.session is not None
        ]
        sent = 0
        for key, session in sessions:
            try:
                await session.send_tool_list_changed()
                sent += 1
            except Exception as exc:  # noqa: BLE001 - the session ended: forget it
                logger.debug("tools/list_changed not delivered (%s)", type(exc).__name__)
                self._forget(key)
        return sent

    def _forget(self, mcp_session_id: str) -> None:
        self._entries.pop(mcp_session_id, None)
        self._by_digest.pop(digest(mcp_session_id), None)

    def _prune(self, now: float) -> None:
        """Forget the sessions idle past the session manager's timeout (it has ended them)."""
        self._swept = now
        cutoff = now - self._idle
        for key in [key for key, entry in self._entries.items() if entry.seen < cutoff]:
            self._forget(key)

    def __len__(self) -> int:
        return len(self._entries)


def publish(mcp_session_id: str) -> None:
    _publish(digest(mcp_session_id))


def _publish(message: str) -> None:
    try:
        redis.sync_client().publish(CHANNEL, message)
    except Exception as exc:  # noqa: BLE001 - best effort: the next request shows the right tools anyway
        logger.warning("Could not publish an MCP tools/list_changed notice (%s)", type(exc).__name__)


def endpoint_changed(tenant: str, apps: Iterable[str] | None) -> None:
    """After the current transaction commits, tell every process to notify all sessions of these endpoints of
    `tenant` (None: all of its applications)."""
    messages = [f"{ENDPOINT_PREFIX}{tenant}/{app}" for app in (sorted(apps) if apps is not None else [ALL_APPS])]

    def send() -> None:
        for message in messages:
            _publish(message)

    transaction.on_commit(send)


def tools_changed(mcp_session_id: str) -> None:
    """After the current transaction commits, tell the process holding this MCP session to notify its client."""
    if mcp_session_id:
        transaction.on_commit(lambda: publish(mcp_session_id))


async def listen(live: LiveSessions) -> None:
    """Deliver published notices to the sessions of this process until cancelled (reconnects with backoff)."""
    delay = 0.5
    while True:
        client = redis.new_async_client()
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                delay = 0.5
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        text = data.decode("utf-8", "replace")
                        if text.startswith(ENDPOINT_PREFIX):
                            tenant, _, app = text[len(ENDPOINT_PREFIX) :].partition("/")
                            await live.notify_endpoint(tenant, app)
                        else:
                            await live.notify(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis away: retry; requests are unaffected
            logger.warning("MCP notification listener lost Redis (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        finally:
            await client.aclose()
