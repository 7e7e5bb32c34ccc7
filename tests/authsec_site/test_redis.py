"""The one door to Redis, against the real Redis of the test run."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_py
from django.conf import settings
from django.core.cache import cache
from redis.connection import HIREDIS_AVAILABLE

from authsec_site.lib import redis


def test_replies_are_parsed_by_hiredis() -> None:
    assert HIREDIS_AVAILABLE
    assert type(redis.sync_client().connection_pool.get_connection()._parser).__name__ == "_HiredisParser"  # noqa: SLF001


def test_the_django_cache_shares_the_sync_clients_pool() -> None:
    assert cache._cache.get_client(write=True).connection_pool is redis.sync_client().connection_pool  # noqa: SLF001
    key = f"door-test:{uuid.uuid4().hex}"
    cache.set(key, 41)
    assert redis.sync_client().incr(cache.make_key(key)) == 42
    assert cache.get(key) == 42
    cache.delete(key)


def test_one_async_client_per_event_loop_and_concurrent_mgets_get_their_own_answers() -> None:
    prefix = f"door-test:{uuid.uuid4().hex}:"
    redis.sync_client().mset({f"{prefix}{i}": f"value-{i}" for i in range(200)})

    async def main() -> redis_py.asyncio.Redis:
        client = redis.async_client()
        assert redis.async_client() is client
        replies = await asyncio.gather(*(client.mget([f"{prefix}{i}", f"{prefix}missing"]) for i in range(200)))
        assert replies == [[f"value-{i}".encode(), None] for i in range(200)]
        with pytest.raises(redis_py.ResponseError):
            await client.execute_command("NO-SUCH-COMMAND")
        assert await client.mget([f"{prefix}7"]) == [b"value-7"]  # still in step
        await client.aclose()
        return client

    try:
        first = asyncio.run(main())
        assert asyncio.run(main()) is not first  # connections belong to the loop that made them
    finally:
        redis.sync_client().delete(*[f"{prefix}{i}" for i in range(200)])


def test_reads_the_database_of_the_url_and_reconnects_after_the_server_drops_it() -> None:
    parts = urlsplit(settings.REDIS_URL)
    url_14, url_15 = (urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", "")) for db in (14, 15))
    key = f"door-test:{uuid.uuid4().hex}"
    in_14 = redis.sync_client(url_14)
    in_14.set(key, b"here")

    async def main() -> None:
        client, other = redis.async_client(url_14), redis.async_client(url_15)
        try:
            assert await client.mget([key]) == [b"here"]
            assert await other.mget([key]) == [None]  # another database
            name = f"door-{uuid.uuid4().hex}"
            await client.client_setname(name)
            ours = [entry for entry in in_14.client_list() if entry.get("name") == name]
            assert len(ours) == 1
            in_14.client_kill_filter(_id=ours[0]["id"])
            await asyncio.sleep(0.2)
            assert await client.mget([key]) == [b"here"]  # dropped connection noticed; a new one is made
        finally:
            await client.aclose()
            await other.aclose()

    try:
        asyncio.run(main())
    finally:
        in_14.delete(key)


def test_connection_params_tell_tls_and_unix_sockets_apart() -> None:
    assert redis.connection_params("rediss://127.0.0.1:6380/0")["ssl"] is True
    plain = redis.connection_params("redis://user:secret@127.0.0.1:6390/3")
    assert (plain["ssl"], plain["host"], plain["port"], plain["db"]) == (False, "127.0.0.1", 6390, 3)
    assert (plain["username"], plain["password"]) == ("user", "secret")
    assert "path" in redis.connection_params("unix:///run/redis.sock")


def test_commands_are_packed_and_replies_parsed_as_redis_speaks() -> None:
    assert redis.pack("MGET", "a", b"\xff") == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\n\xff\r\n"
    reader = redis.reply_reader()
    reply = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n-ERR wrong\r\n"
    for cut in range(len(reply) - 12):  # any prefix is incomplete, never misread
        probe = redis.reply_reader()
        probe.feed(reply[:cut])
        assert probe.gets() is False
    reader.feed(reply)
    assert reader.gets() == [b"message", b"ch", b"hi"]
    error = reader.gets()
    assert isinstance(error, redis.ReplyError) and str(error) == "ERR wrong"
    assert reader.gets() is False
    reader.feed(b"?bogus\r\n")
    with pytest.raises(redis.ProtocolError):
        reader.gets()


def test_a_raw_protocol_connection_is_refused_for_tls_and_unix_sockets() -> None:
    for url in ("rediss://127.0.0.1:6380/0", "unix:///run/redis.sock"):
        with pytest.raises(redis.Unsupported):
            asyncio.run(redis.open_protocol(lambda params: asyncio.Protocol(), url))
