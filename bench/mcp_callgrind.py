#!/usr/bin/env python3
"""Instructions per MCP request, counted by callgrind (docs/benchmarks.md): `make bench-mcp`'s ASGI app (our
endpoint with a bearer token and the plain `mcp` server) driven in-process, one request at a time, no network.

Run it under valgrind, through devstack for the services (it creates the bench data like `make bench-mcp`):

    scripts/devstack.py exec --database authsec_bench -- env CALLGRIND_DIR=/tmp valgrind --tool=callgrind \\
        --instr-atstart=no --callgrind-out-file=/tmp/cg.%p .venv/bin/python bench/mcp_callgrind.py

Each row opens a session (initialize), warms up, then switches callgrind's collection on (`callgrind_control`)
for `CALLGRIND_CALLS` requests only and dumps the counters; start-up, Django and the warm-up are not counted.
Work done per unit of time rather than per request (the audit queue's flush every 200 ms, the re-read of a tenant
every 5 s) is held off for the whole run: under valgrind a request takes 50-100 ms of wall time, so a slower run
would otherwise count more of it per request (≈ 35,000 instructions per call between two runs of the same code).
The audit events still go to the audit process, at shutdown. Without valgrind it runs the same loops and prints
wall time per request (a smoke test of the harness).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE = "http://127.0.0.1:8000"
os.environ["AUTHSEC_PUBLIC_URL"] = BASE
os.environ.setdefault("DEBUG", "0")

from bench.mcp_bench import CALL, PROTOCOL, ensure_data, mint_token  # noqa: E402  (sets Django up)
from bench.mcp_bench_asgi import application  # noqa: E402

CALLS = int(os.environ.get("CALLGRIND_CALLS", "1000"))
WARMUP = int(os.environ.get("CALLGRIND_WARMUP", "300"))
UNDER_VALGRIND = "vgpreload" in Path("/proc/self/maps").read_text()


def callgrind(*args: str) -> None:
    if UNDER_VALGRIND:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


async def request(path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    raw = json.dumps(body).encode()
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
        "headers": [(key.lower().encode(), value.encode()) for key, value in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    done = asyncio.Event()
    sent = False
    status, response_headers, chunks = 0, {}, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update((k.decode().lower(), v.decode()) for k, v in message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await application(scope, receive, send)
    done.set()
    return status, response_headers, b"".join(chunks)


async def open_session(path: str, token: str | None) -> dict[str, str]:
    headers = {
        "host": "127.0.0.1:8000",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "cg", "version": "1"}},
    }
    status, answer, body = await request(path, init, headers)
    assert status == 200, (status, body[:500])
    headers = {**headers, "mcp-session-id": answer["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
    status, _, _ = await request(path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    assert status in (200, 202), status
    return headers


async def loop(path: str, headers: dict[str, str], count: int) -> None:
    for i in range(count):
        message = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": CALL}
        status, _, body = await request(path, message, headers)
        if status != 200 or b'"isError":true' in body or b'"error"' in body:
            raise SystemExit(f"request failed: {status} {body[:300]!r}")


async def lifespan() -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(application({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    assert message["type"] == "lifespan.startup.complete", message
    return task, inbox


def hold_off_timed_work() -> None:
    from audit.pipeline import queue
    from mcp_endpoint import bearer

    queue.FLUSH_INTERVAL = 24 * 3600.0
    bearer.TENANT_TTL = 24 * 3600.0


async def main() -> None:
    hold_off_timed_work()
    user_id = await asyncio.to_thread(ensure_data)
    token = await asyncio.to_thread(mint_token, user_id, BASE, "mcp-bench")
    task, inbox = await lifespan()
    rows = [("ours", "/t/bench/mcp/mcp-bench", token), ("plain", "/plain/mcp", None)]
    for name, path, row_token in rows:
        headers = await open_session(path, row_token)
        await loop(path, headers, WARMUP)
        await asyncio.sleep(0.5)  # let the audit flush of the warm-up go by
        callgrind("--instr=on")
        callgrind("--zero")
        started = time.perf_counter()
        await loop(path, headers, CALLS)
        elapsed = time.perf_counter() - started
        callgrind(f"--dump={name}")
        callgrind("--instr=off")
        print(f"{name:<14} {CALLS} tools/call, {elapsed / CALLS * 1e6:.0f} µs each (wall)", flush=True)
    await inbox.put({"type": "lifespan.shutdown"})
    await task
    if UNDER_VALGRIND:
        report()


def report() -> None:
    """Instructions per call from this process's dumps in `CALLGRIND_DIR` (each dump's `totals:` line)."""
    for path in sorted(Path(os.environ.get("CALLGRIND_DIR", ".")).glob(f"*.{os.getpid()}.*")):
        text = path.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: (.*)$", text, re.M)
        totals = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and totals:
            print(f"{path}: {trigger.group(1)}: {int(totals.group(1)) / CALLS:,.0f} instructions per call", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
