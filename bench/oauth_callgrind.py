#!/usr/bin/env python3
"""Instructions and queries per token-endpoint request, one row per grant type (`make bench-oauth-instructions`,
docs/benchmarks.md "## OAuth"): the same requests as `make bench-oauth` (Django's test client into the real
middleware, views, django-oauth-toolkit, Postgres, Redis and OpenBao, in this one process, DEBUG off, the audit
pipeline running as in a server process), counted in ways that do not depend on how busy the machine is.

Run under callgrind (the Makefile target does), through devstack for the services:

    scripts/devstack.py exec --database authsec_bench_oauth -- env CALLGRIND_DIR=/tmp valgrind --tool=callgrind \\
        --instr-atstart=no --callgrind-out-file=/tmp/cg.%p .venv/bin/python bench/oauth_callgrind.py

Each row warms up, then switches callgrind's collection on (`callgrind_control`) for `CALLGRIND_CALLS` requests
only and dumps the counters; start-up, data set-up, code preparation and the warm-up are not counted. Only this
process is counted: the work Postgres and Redis do for it is not. Without valgrind it runs the same loops and
prints the queries per request and the CPU time per request (a smoke test of the harness). Queries are the
statements sent to Postgres, from Django's query log. `OAUTH_PROFILE=DIR` also writes a cProfile of each row's
loop there (`DIR/<grant>.prof`).
"""

from __future__ import annotations

import cProfile
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from oauth2_provider.settings import oauth2_settings  # noqa: E402

from bench import oauth_bench as bench  # noqa: E402
from bench.inprocess import UNDER_VALGRIND, callgrind, dumped_totals  # noqa: E402
from oauth import issuer  # noqa: E402

CALLS = int(os.environ.get("CALLGRIND_CALLS", "100"))
WARMUP = int(os.environ.get("CALLGRIND_WARMUP", "20"))
PROFILE_DIR = os.environ.get("OAUTH_PROFILE", "")
SHOW_SQL = os.environ.get("OAUTH_SQL", "") == "1"  # print the statements of the request whose queries are counted


def statements_sent(logged: list[str]) -> int:
    """Django logs BEGIN and COMMIT for every `atomic` block, but psycopg sends neither for a block that ran no
    statement: those pairs are not counted."""
    count, i = 0, 0
    while i < len(logged):
        if logged[i] == "BEGIN" and i + 1 < len(logged) and logged[i + 1] == "COMMIT":
            i += 2
            continue
        count, i = count + 1, i + 1
    return count


def measure(name: str, requests: list[Callable[[], object]]) -> None:
    """Warm up, count one request's queries, then the counted loop (callgrind dump `name`)."""
    warm, rest = requests[:WARMUP], requests[WARMUP:]
    for call in warm[:-1]:
        call()
    with CaptureQueriesContext(connection) as queries:
        warm[-1]()
    query_count = statements_sent([query["sql"] for query in queries])  # now: the next request clears the log
    if SHOW_SQL:
        for query in queries:
            print(f"  {name}: {query['sql'][:300]}", flush=True)
    profile = cProfile.Profile() if PROFILE_DIR else None
    callgrind("--instr=on")
    callgrind("--zero")
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for call in rest:
        call()
    if profile is not None:
        profile.disable()
        profile.dump_stats(str(Path(PROFILE_DIR) / f"{name}.prof"))
    cpu = time.process_time() - started
    callgrind(f"--dump={name}")
    callgrind("--instr=off")
    print(
        f"{name:<20} {query_count:>3} queries/request; {len(rest)} requests, {cpu / len(rest) * 1e3:.2f} ms CPU each",
        flush=True,
    )


def main() -> int:
    bench.N_CODES = 2 * (WARMUP + CALLS)  # the code exchanges' codes, then a second set for the refresh row
    # Under valgrind a request takes ≈ 1 s: codes prepared at the start must outlive the minutes until their use.
    oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS = 3600
    tenant = bench.ensure_tenant()
    with schema_context(tenant.schema_name):
        _user, public, machine, machine_secret, password = bench.ensure_data(secrets.token_urlsafe(16))
        bench.reset_tokens([public, machine])
        bench.ensure_signing_key()
        resource = issuer.mcp_resource("bench", tenant)
        codes = bench.prepare_codes(public, password, resource)
        http = HttpClient(**bench.HOST)

        def exchange(code: str, verifier: str, redirect_uri: str) -> str:
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": public.client_id,
                "code_verifier": verifier,
            }
            response = bench.token_post(http, data)
            assert response.status_code == 200, response.content[:500]
            return response.json()["refresh_token"]

        def refresh(token: str) -> None:
            data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": public.client_id}
            response = bench.token_post(http, data)
            assert response.status_code == 200, response.content[:500]

        auth = bench.basic(machine.client_id, machine_secret)

        def client_credentials() -> None:
            data = {"grant_type": "client_credentials", "resource": resource}
            response = bench.token_post(http, data, **auth)
            assert response.status_code == 200, response.content[:500]

        half = WARMUP + CALLS
        with bench.ServerConditions():  # the audit pipeline runs, start-up objects frozen: as in a server process
            measure("authorization_code", [lambda c=c: exchange(*c) for c in codes[:half]])
            refresh_tokens = [exchange(*c) for c in codes[half:]]  # not counted
            measure("refresh_token", [lambda t=t: refresh(t) for t in refresh_tokens])
            measure("client_credentials", [client_credentials for _ in range(half)])
    if UNDER_VALGRIND:
        report()
    return 0


def report() -> None:
    """Instructions per request from this process's dumps."""
    for trigger, total in dumped_totals():
        print(f"{trigger.removeprefix('dump '):<20} {total / CALLS:>12,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    sys.exit(main())
