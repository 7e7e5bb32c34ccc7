"""Driving the bench's ASGI app (`bench.mcp_bench_asgi`) in-process, one request at a time, with no sockets and no
load generator, for the instruction-count benches (`bench/mcp_callgrind.py`, `bench/mcp_instructions.py`); and
switching callgrind's collection on and off around what they measure."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
UNDER_VALGRIND = "vgpreload" in Path("/proc/self/maps").read_text()


def callgrind(*args: str) -> None:
    """`callgrind_control` on this process (nothing without valgrind). The process keeps running Python meanwhile:
    callgrind takes commands only from a running process, and what the wait costs is a few loop iterations."""
    if not UNDER_VALGRIND:
        return
    control = subprocess.Popen(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL)
    while control.poll() is None:
        time.sleep(0.001)


def dumped_totals() -> list[tuple[str, int]]:
    """(trigger, instructions) of each callgrind dump this process wrote in `CALLGRIND_DIR` (its `totals:` line)."""
    found = []
    for path in sorted(Path(os.environ.get("CALLGRIND_DIR", ".")).glob(f"*.{os.getpid()}.*")):
        text = path.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: (.*)$", text, re.M)
        totals = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and totals:
            found.append((trigger.group(1), int(totals.group(1))))
    return found


async def request(app: App, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One POST of `body` to `path`: (status, response headers with lower-case names, response body)."""
    raw = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    raw += [(b"accept", b"application/json, text/event-stream"), (b"content-length", b"%d" % len(body))]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    response: dict[str, Any] = {"status": 0, "headers": {}, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
            response["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return response["status"], response["headers"], response["body"]


async def start(app: App) -> Callable[[], Awaitable[None]]:
    """Run the app's lifespan startup; returns the coroutine function that shuts it down."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(message)

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await task

    return stop


async def open_session(app: App, path: str, headers: dict[str, str], protocol: str) -> dict[str, str]:
    """`initialize` and `notifications/initialized`; returns `headers` with the session's id and protocol."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": protocol, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
    }
    status, answer, data = await request(app, path, json.dumps(init).encode(), headers)
    assert status == 200, (status, data[:500])
    headers = {**headers, "mcp-session-id": answer["mcp-session-id"], "mcp-protocol-version": protocol}
    status, _, _ = await request(app, path, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', headers)
    assert status in (200, 202), status
    return headers


async def repeat(app: App, path: str, headers: dict[str, str], message: dict[str, Any], count: int) -> None:
    """`count` requests of `message` (each with its own id); stops the bench on a failed one."""
    tail = json.dumps(message).encode()[1:]
    for i in range(count):
        status, _, data = await request(app, path, b'{"jsonrpc": "2.0", "id": %d, ' % (i + 1) + tail, headers)
        if status != 200 or b'"error"' in data or b'"isError":true' in data:
            raise SystemExit(f"request failed: {status} {data[:300]!r}")
