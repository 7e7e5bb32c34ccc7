#!/usr/bin/env python3
"""Work per MCP request of the server alone: the bench's ASGI app (`bench.mcp_bench_asgi`) driven in-process, one
request at a time, no sockets, no load generator (docs/benchmarks.md, "instructions per call").

    scripts/devstack.py exec --database authsec_bench -- valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/tmp/cg.%p .venv/bin/python bench/mcp_instructions.py ours 2000

Under callgrind (`--instr-atstart=no`), collection is switched on with `callgrind_control` around the measured
loop only, so the file's ``totals`` divided by the number of calls is the instructions per call; without
callgrind the CPU time per call is printed. On a machine shared with other work, instruction counts are the
steadier figure: they do not depend on the CPU's speed of the moment.

Arguments: ``ours`` | ``plain`` (the server measured), the number of calls (default 2000), and ``list`` to send
tools/list to the 1,000-tool applications instead of tools/call. ``BENCH_METRICS=0`` replaces the metrics
functions of the MCP endpoint's hot path with no-ops, to measure what they cost (metrics on vs off);
``BENCH_METRICS=ab`` alternates blocks of `BENCH_BLOCK` (250) calls with them on and off in one process, and under
callgrind dumps the counts of each block (``callgrind_control --dump=on-N`` / ``off-N``): the work that runs on
timers (cache entries expiring, flushes), which grows with the wall time a run takes on a loaded machine, then
falls on both alike. Compare the sums of the ``on`` and ``off`` dumps' ``totals``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE = "http://127.0.0.1:8000"
os.environ["AUTHSEC_PUBLIC_URL"] = BASE
os.environ["DEBUG"] = "0"

from authsec_site.lib import metrics  # noqa: E402
from bench.mcp_bench import CALL, PROTOCOL, ensure_data, mint_token  # noqa: E402 - sets Django up

METRICS = os.environ.get("BENCH_METRICS", "1")
ON = (metrics.tool_call, metrics.tools_listed)
OFF = (lambda *args: None, lambda *args: None)


def use_metrics(on: bool) -> None:
    metrics.tool_call, metrics.tools_listed = ON if on else OFF  # type: ignore[assignment]


use_metrics(METRICS != "0")

from bench.mcp_bench_asgi import application  # noqa: E402

UNDER_CALLGRIND = "valgrind" in os.environ.get("LD_PRELOAD", "") or "vgpreload" in os.environ.get("LD_PRELOAD", "")


def callgrind(*args: str) -> None:
    """`callgrind_control` on this process; the process keeps running Python meanwhile (callgrind takes commands
    only from a running process), and what that costs is a few iterations of this loop."""
    control = subprocess.Popen(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL)
    while control.poll() is None:
        time.sleep(0.001)  # few instructions while waiting; callgrind still takes the command


async def request(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
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
    response: dict[str, Any] = {"body": b""}

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

    await application(scope, receive, send)
    return response["status"], response["headers"], response["body"]


async def main(server: str, calls: int, method: str, token: str) -> None:
    app = "mcp-bench-1k" if method == "list" else "mcp-bench"
    path = f"/t/bench/mcp/{app}" if server == "ours" else ("/plain1k/mcp" if method == "list" else "/plain/mcp")
    headers = {"Authorization": f"Bearer {token}"} if server == "ours" else {}

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    ready = asyncio.Event()
    await startup.put({"type": "lifespan.startup"})

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            ready.set()
        elif message["type"].endswith("failed"):
            raise SystemExit(message)

    lifespan = asyncio.create_task(application({"type": "lifespan"}, startup.get, lifespan_send))
    await ready.wait()
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
    }
    status, response_headers, data = await request(path, json.dumps(init).encode(), headers)
    assert status == 200, data
    headers["Mcp-Session-Id"] = response_headers["mcp-session-id"]
    headers["Mcp-Protocol-Version"] = PROTOCOL
    await request(path, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', headers)
    body = {"method": "tools/list"} if method == "list" else {"method": "tools/call", "params": CALL}
    tail = json.dumps(body).encode()[1:]

    async def run(n: int) -> None:
        for i in range(n):
            status, _, data = await request(path, b'{"jsonrpc": "2.0", "id": %d, ' % i + tail, headers)
            if status != 200 or b'"error"' in data or b'"isError":true' in data:
                raise SystemExit(f"request failed: {status} {data[:300]!r}")

    await run(max(200, calls // 5))  # warm-up: caches, the mirror, the audit process
    await asyncio.sleep(1.0)
    if METRICS == "ab":
        block = int(os.environ.get("BENCH_BLOCK", "250"))
        cpu_by = {"on": 0.0, "off": 0.0}
        if UNDER_CALLGRIND:
            callgrind("-i", "on")
            callgrind("--zero")
        for number in range(calls // block):
            label = "on" if number % 4 in (0, 3) else "off"  # ABBA: neighbours alike
            use_metrics(label == "on")
            started = time.process_time()
            await run(block)
            cpu_by[label] += time.process_time() - started
            if UNDER_CALLGRIND:
                callgrind(f"--dump={label}-{number}")
        if UNDER_CALLGRIND:
            callgrind("-i", "off")
        half = calls // block // 2 * block
        for label, cpu in cpu_by.items():
            print(f"{server} {method}, metrics {label}: {half} requests, {cpu / half * 1e6:.1f} µs CPU each")
    else:
        started = time.process_time()
        if UNDER_CALLGRIND:
            callgrind("-i", "on")
        await run(calls)
        if UNDER_CALLGRIND:
            callgrind("-i", "off")
        cpu = time.process_time() - started
        print(f"{server} {method}: {calls} requests, {cpu / calls * 1e6:.1f} µs CPU each (the web process)")
    await startup.put({"type": "lifespan.shutdown"})
    await lifespan


if __name__ == "__main__":
    args = sys.argv[1:]
    server, calls, method = args[0] if args else "ours", int(args[1]) if len(args) > 1 else 2000, args[2:3] or ["call"]
    token = mint_token(ensure_data(), BASE, "mcp-bench-1k" if method == ["list"] else "mcp-bench")
    asyncio.run(main(server, calls, method[0], token))
