"""The MCP endpoint's small pipelined Redis client, against the real Redis of the test run."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings

from mcp_endpoint.fastredis import FastRedis, Incomplete, ReplyError, Unsupported, encode, parse


def test_parse_handles_every_reply_type_and_partial_input() -> None:
    reply = b"*4\r\n$3\r\nabc\r\n$-1\r\n:42\r\n+OK\r\n"
    assert parse(reply) == ([b"abc", None, 42, "OK"], len(reply))
    for cut in range(len(reply)):  # any prefix is incomplete, never misread
        with pytest.raises(Incomplete):
            parse(reply[:cut])
    error, _ = parse(b"-ERR wrong\r\n")
    assert isinstance(error, ReplyError) and str(error) == "ERR wrong"
    assert encode("MGET", "a", b"\xff") == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\n\xff\r\n"


def test_tls_urls_are_left_to_redis_py() -> None:
    with pytest.raises(Unsupported):
        FastRedis("rediss://127.0.0.1:6380/0")


def test_concurrent_mgets_on_one_connection_get_their_own_answers() -> None:
    prefix = f"fastredis-test:{uuid.uuid4().hex}:"
    plain = redis.Redis.from_url(settings.REDIS_URL)
    plain.mset({f"{prefix}{i}": f"value-{i}" for i in range(200)})

    async def main() -> None:
        client = FastRedis(settings.REDIS_URL)
        try:
            replies = await asyncio.gather(*(client.mget([f"{prefix}{i}", f"{prefix}missing"]) for i in range(200)))
            assert replies == [[f"value-{i}".encode(), None] for i in range(200)]
            with pytest.raises(ReplyError):
                await client.execute("NO-SUCH-COMMAND")
            assert await client.mget([f"{prefix}7"]) == [b"value-7"]  # the pipeline is still in step
        finally:
            client.close()

    try:
        asyncio.run(main())
    finally:
        plain.delete(*[f"{prefix}{i}" for i in range(200)])


def test_reads_the_database_of_the_url_and_reconnects_after_the_server_drops_it() -> None:
    parts = urlsplit(settings.REDIS_URL)
    url_14, url_15 = (urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", "")) for db in (14, 15))
    key = f"fastredis-test:{uuid.uuid4().hex}"
    in_14 = redis.Redis.from_url(url_14)
    in_14.set(key, b"here")

    async def main() -> None:
        client, other = FastRedis(url_14), FastRedis(url_15)
        try:
            assert await client.mget([key]) == [b"here"]
            assert await other.mget([key]) == [None]  # SELECT 15 on connect: another database
            name = f"fastredis-{uuid.uuid4().hex}"
            assert await client.execute("CLIENT", "SETNAME", name) == "OK"
            ours = [entry for entry in in_14.client_list() if entry.get("name") == name]
            assert len(ours) == 1
            in_14.execute_command("CLIENT", "KILL", "ID", ours[0]["id"])
            await asyncio.sleep(0.2)
            assert await client.mget([key]) == [b"here"]  # dropped connection noticed; a new one is made
            assert len([entry for entry in in_14.client_list() if entry.get("name") == name]) == 0
        finally:
            client.close()
            other.close()

    try:
        asyncio.run(main())
    finally:
        in_14.delete(key)
