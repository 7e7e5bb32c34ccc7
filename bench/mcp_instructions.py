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
import os
import sys
import time
from pathlib import Path

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

from bench import inprocess  # noqa: E402
from bench.inprocess import callgrind  # noqa: E402
from bench.mcp_bench_asgi import application  # noqa: E402


async def main(server: str, calls: int, method: str, token: str) -> None:
    app = "mcp-bench-1k" if method == "list" else "mcp-bench"
    path = f"/t/bench/mcp/{app}" if server == "ours" else ("/plain1k/mcp" if method == "list" else "/plain/mcp")
    headers = {"Authorization": f"Bearer {token}"} if server == "ours" else {}

    stop = await inprocess.start(application)
    headers = await inprocess.open_session(application, path, headers, PROTOCOL)
    message = {"method": "tools/list"} if method == "list" else {"method": "tools/call", "params": CALL}

    async def run(n: int) -> None:
        await inprocess.repeat(application, path, headers, message, n)

    await run(max(200, calls // 5))  # warm-up: caches, the mirror, the audit process
    await asyncio.sleep(1.0)
    if METRICS == "ab":
        block = int(os.environ.get("BENCH_BLOCK", "250"))
        cpu_by = {"on": 0.0, "off": 0.0}
        callgrind("-i", "on")
        callgrind("--zero")
        for number in range(calls // block):
            label = "on" if number % 4 in (0, 3) else "off"  # ABBA: neighbours alike
            use_metrics(label == "on")
            started = time.process_time()
            await run(block)
            cpu_by[label] += time.process_time() - started
            callgrind(f"--dump={label}-{number}")
        callgrind("-i", "off")
        half = calls // block // 2 * block
        for label, cpu in cpu_by.items():
            print(f"{server} {method}, metrics {label}: {half} requests, {cpu / half * 1e6:.1f} µs CPU each")
    else:
        started = time.process_time()
        callgrind("-i", "on")
        await run(calls)
        callgrind("-i", "off")
        cpu = time.process_time() - started
        print(f"{server} {method}: {calls} requests, {cpu / calls * 1e6:.1f} µs CPU each (the web process)")
    await stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    server, calls, method = args[0] if args else "ours", int(args[1]) if len(args) > 1 else 2000, args[2:3] or ["call"]
    token = mint_token(ensure_data(), BASE, "mcp-bench-1k" if method == ["list"] else "mcp-bench")
    asyncio.run(main(server, calls, method[0], token))
