"""The per-process mirror of the hot-path Redis keys, against the real Redis of the test run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context

from authsec_site.lib import coherence
from mcp_endpoint.mirror import CLIENT_NAME, ENTRY_TTL, MISSING, Mirror
from tests.support.live import LiveServer
from tests.support.mcp import Committed, modern_rpc

pytestmark = pytest.mark.django_db


def _raw(key: str) -> str:
    with schema_context("tenant_acme"):
        return cache.make_key(key)


def _announce(key: str, value: Any, timeout: int | None = None) -> None:
    with schema_context("tenant_acme"):
        coherence.set_and_announce(key, value, timeout)


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def _mirror() -> Mirror:
    return Mirror(settings.REDIS_URL, coherence.channel())


def test_an_announced_write_is_stored_in_redis_and_reaches_a_live_mirror() -> None:
    key = f"mcp:test:{uuid.uuid4().hex}"

    async def main() -> None:
        mirror = _mirror()
        assert mirror.get(_raw(key)) is MISSING  # not subscribed: never answers
        async with mirror.running():
            assert await _until(lambda: mirror.live)
            assert mirror.get(_raw(key)) is MISSING
            await asyncio.to_thread(_announce, key, "v1")
            assert await _until(lambda: mirror.get(_raw(key)) == "v1")
            await asyncio.to_thread(_announce, key, "v2")
            assert await _until(lambda: mirror.get(_raw(key)) == "v2")
        assert mirror.get(_raw(key)) is MISSING  # stopped: forgets everything

    asyncio.run(main())
    with schema_context("tenant_acme"):
        assert cache.get(key) == "v2"  # what the mirror saw is what Redis holds, for cache readers too


_ANNOUNCER = """
import sys, django
django.setup()
from django_tenants.utils import schema_context
from authsec_site.lib import coherence
with schema_context("tenant_acme"):
    coherence.set_and_announce(sys.argv[1], sys.argv[2])
"""


def test_a_write_announced_by_another_process_reaches_a_live_mirror_and_replaces_its_entry() -> None:
    """Invalidation across processes: a write in another process (a dashboard worker, a Celery task) is what
    this process's mirror holds next, through Redis pub/sub alone."""
    key = f"mcp:test:{uuid.uuid4().hex}"

    async def main() -> None:
        mirror = _mirror()
        async with mirror.running():
            assert await _until(lambda: mirror.live)
            await asyncio.to_thread(_announce, key, "here")
            assert await _until(lambda: mirror.get(_raw(key)) == "here")
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "authsec_site.settings"),
            }
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", _ANNOUNCER, key, "there"],
                env=env,
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            assert await _until(lambda: mirror.get(_raw(key)) == "there")

    asyncio.run(main())


def test_a_read_that_raced_an_announcement_does_not_overwrite_it() -> None:
    mirror = _mirror()
    mirror.went_live()
    epoch = mirror.epoch
    mirror.apply(json.dumps({"k": "k1", "v": "new", "e": None}).encode())  # arrived while the MGET was out
    mirror.fill(epoch, "k1", "old")
    assert mirror.get("k1") == "new"


def test_a_read_sent_before_the_subscription_changed_is_not_kept() -> None:
    mirror = _mirror()
    mirror.went_live()
    epoch = mirror.epoch
    mirror.went_dark()
    mirror.went_live()  # resubscribed: announcements may have been missed in between
    mirror.fill(epoch, "k1", "maybe-stale")
    assert mirror.get("k1") is MISSING
    mirror.fill(mirror.epoch, "k1", "fresh")
    assert mirror.get("k1") == "fresh"


def test_an_entry_never_outlives_the_key_it_mirrors() -> None:
    mirror = _mirror()
    mirror.went_live()
    mirror.apply(json.dumps({"k": "gone", "v": 1, "e": time.time() - 1}).encode())
    mirror.apply(json.dumps({"k": "kept", "v": 1, "e": time.time() + 60}).encode())
    assert mirror.get("gone") is MISSING and mirror.get("kept") == 1
    mirror.apply(b"not json")  # ignored, the mirror keeps working
    assert mirror.get("kept") == 1


def test_a_lost_subscription_forgets_everything_until_it_is_back() -> None:
    key = f"mcp:test:{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(settings.REDIS_URL)

    async def main() -> None:
        mirror = _mirror()
        async with mirror.running():
            assert await _until(lambda: mirror.live)
            await asyncio.to_thread(_announce, key, "before")
            assert await _until(lambda: mirror.get(_raw(key)) == "before")
            ours = [c for c in admin.client_list() if c["name"] == f"{CLIENT_NAME}-{os.getpid()}"]
            assert len(ours) == 1
            admin.client_kill_filter(_id=ours[0]["id"])
            assert await _until(lambda: not mirror.live, 2)
            assert mirror.get(_raw(key)) is MISSING  # whatever was announced meanwhile would be missed
            assert await _until(lambda: mirror.live, 10)  # resubscribed
            assert mirror.get(_raw(key)) is MISSING  # starts empty: nothing from before is trusted
            await asyncio.to_thread(_announce, key, "after")
            assert await _until(lambda: mirror.get(_raw(key)) == "after")

    asyncio.run(main())


def _mgets_on_our_db(admin: redis.Redis, during: Callable[[], None]) -> int:
    """MGETs on this suite's Redis database while `during` runs. MONITOR names the database of each command;
    the server-wide `INFO commandstats` would also count other databases' (another xdist worker's, or
    another checkout's suite on the same Redis)."""
    db = int(admin.connection_pool.connection_kwargs.get("db", 0))
    marker = f"end-{uuid.uuid4().hex}"
    with admin.monitor() as monitor:
        during()
        admin.echo(marker)
        mgets = 0
        while True:
            seen = monitor.next_command()
            if marker in seen["command"]:
                return mgets
            mgets += seen["db"] == db and seen["command"].upper().startswith("MGET ")


def test_steady_state_tool_calls_make_no_redis_round_trip(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    endpoint = f"{asgi_server.url}/t/acme/mcp/demo"
    bearer = {"Authorization": f"Bearer {tokens('alice@acme.test')}"}
    admin = redis.Redis.from_url(settings.REDIS_URL)
    for _ in range(3):  # warm: the mirror fills what it does not hold yet
        assert modern_rpc(endpoint, "tools/call", {"name": "hello", "arguments": {}}, bearer).status_code == 200

    def calls() -> None:
        for _ in range(30):
            response = modern_rpc(endpoint, "tools/call", {"name": "hello", "arguments": {}}, bearer)
            assert response.status_code == 200 and "Hello, alice@acme.test!" in response.text

    # Each request used to read three keys with one MGET; now only an entry expiring meanwhile is re-read
    # (entries live ENTRY_TTL seconds: a loaded machine that takes longer over the 30 calls sees more expiries).
    started = time.monotonic()
    mgets = _mgets_on_our_db(admin, calls)
    periods = 1 + int((time.monotonic() - started) // ENTRY_TTL)
    assert mgets <= 3 * periods, (mgets, periods)
