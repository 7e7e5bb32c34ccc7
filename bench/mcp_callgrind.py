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
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE = "http://127.0.0.1:8000"
os.environ["AUTHSEC_PUBLIC_URL"] = BASE
os.environ.setdefault("DEBUG", "0")

from bench import inprocess  # noqa: E402
from bench.inprocess import callgrind  # noqa: E402
from bench.mcp_bench import CALL, PROTOCOL, ensure_data, mint_token  # noqa: E402  (sets Django up)
from bench.mcp_bench_asgi import application  # noqa: E402

CALLS = int(os.environ.get("CALLGRIND_CALLS", "1000"))
WARMUP = int(os.environ.get("CALLGRIND_WARMUP", "300"))


def hold_off_timed_work() -> None:
    from audit.pipeline import queue
    from mcp_endpoint import bearer

    queue.FLUSH_INTERVAL = 24 * 3600.0
    bearer.TENANT_TTL = 24 * 3600.0


async def main() -> None:
    hold_off_timed_work()
    user_id = await asyncio.to_thread(ensure_data)
    token = await asyncio.to_thread(mint_token, user_id, BASE, "mcp-bench")
    stop = await inprocess.start(application)
    call = {"method": "tools/call", "params": CALL}
    rows = [("ours", "/t/bench/mcp/mcp-bench", token), ("plain", "/plain/mcp", None)]
    for name, path, row_token in rows:
        auth = {"authorization": f"Bearer {row_token}"} if row_token else {}
        headers = await inprocess.open_session(application, path, auth, PROTOCOL)
        await inprocess.repeat(application, path, headers, call, WARMUP)
        await asyncio.sleep(0.5)  # let the audit flush of the warm-up go by
        callgrind("--instr=on")
        callgrind("--zero")
        started = time.perf_counter()
        await inprocess.repeat(application, path, headers, call, CALLS)
        elapsed = time.perf_counter() - started
        callgrind(f"--dump={name}")
        callgrind("--instr=off")
        print(f"{name:<14} {CALLS} tools/call, {elapsed / CALLS * 1e6:.0f} µs each (wall)", flush=True)
    await stop()
    if inprocess.UNDER_VALGRIND:
        report()


def report() -> None:
    """Instructions per call from this process's dumps."""
    for trigger, total in inprocess.dumped_totals():
        print(f"{trigger}: {total / CALLS:,.0f} instructions per call", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
