#!/usr/bin/env python3
"""Faults under load (`make bench-faults`): the two-node topology on throwaway services, each broken in turn.

Everything runs on services this script starts on free ports (tests/support/faults.py): a Postgres cluster of
its own (initdb + pg_ctl), Debian's redis-server without persistence, an OpenBao with raft storage, and the
topology of tests/support/topology.py (two uvicorn nodes, each with its audit process, HAProxy from
deploy/haproxy.cfg, a Celery worker and beat). The machine's own Postgres and Redis are never touched.

A bounded load (`CLIENTS` closed loops with a pause between requests: tools/list, tools/call, a login tool,
and a token refresh) runs through HAProxy while, in turn:
- Redis is stopped (SIGKILL) for `OUTAGE` seconds, then started again (empty: it has no persistence);
- OpenBao is stopped (SIGKILL) for `OUTAGE` seconds, then started and unsealed;
- Postgres is restarted (``pg_ctl restart -m fast``);
- one web node is SIGKILLed with its audit process (the whole process group), then started again.

For each fault it prints the requests served and failed while the service was away, the distinct errors
clients saw, the seconds from the service's return to the last failed request (recovery; target ≤ 5 s), and
the audit events expected (each tools/list and tools/call answered with a JSON-RPC result) against those
written (target: 0 lost). Then ``verify_audit`` for acme and the public schema. It measures and prints; its
exit code is 1 when a target is missed. Bounded: about 3 minutes of load, plus set-up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.faults import ThrowawayOpenBao, ThrowawayPostgres, ThrowawayRedis, wait_until  # noqa: E402
from tests.support.topology import Backing, Topology  # noqa: E402

CLIENTS = int(os.environ.get("FAULTS_CLIENTS", "6"))
OUTAGE = float(os.environ.get("FAULTS_OUTAGE", "10"))
STEADY = float(os.environ.get("FAULTS_STEADY", "4"))  # seconds of load before each fault
AFTER = float(os.environ.get("FAULTS_AFTER", "10"))  # seconds of load after the service is back
PAUSE = 0.05  # seconds each client waits between requests (a bounded load, not a saturation test)
RECOVERY_TARGET = 5.0
PASSWORD = "a-user-password-1"
REDIRECT = "http://127.0.0.1:9/callback"
HELLO = {"name": "hello", "arguments": {}}
MODERN = "2026-07-28"


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Sample:
    at: float
    phase: str
    op: str
    ok: bool
    error: str = ""
    audited: str = ""  # the audit action an answered request writes ("" for none)


@dataclass
class Load:
    """The clients' shared state: the current phase (its name is the User-Agent, so its events can be found)."""

    phase: str = "warm-up"
    samples: list[Sample] = field(default_factory=list)
    stop: bool = False
    agent_of: dict[str, str] = field(default_factory=dict)

    def agent(self) -> str:
        return self.agent_of.setdefault(self.phase, f"faults-{self.phase}-{uuid.uuid4().hex[:8]}")


def _rpc_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "faults-bench", "version": "1"},
    }
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}


def _classify(response: Any) -> tuple[bool, str, bool]:
    """(served, error label, has a JSON-RPC result) of an MCP answer; a non-protocol answer is labelled so."""
    text = response.text
    if "Traceback" in text or "<html" in text.lower():
        return False, f"HTTP {response.status_code} NOT A PROTOCOL ERROR: {text[:80]!r}", False
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = "".join(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
    try:
        body = json.loads(text)
    except ValueError:
        return False, f"HTTP {response.status_code} NOT JSON: {text[:80]!r}", False
    if "error" in body:
        error = body["error"]
        if isinstance(error, dict):
            return False, f"HTTP {response.status_code} JSON-RPC {error.get('code')}: {error.get('message')}", False
        return False, f"HTTP {response.status_code} {error}: {body.get('error_description', '')}", False
    result = body.get("result", {})
    if result.get("isError"):
        return False, f"HTTP {response.status_code} tool error: {result['content'][0]['text'][:120]}", True
    return True, "", True


class Client:
    """One closed loop of requests through HAProxy, with its own token pair (refreshed in turn)."""

    def __init__(self, load: Load, url: str, client_id: str, pairs: list[dict[str, Any]], http: Any) -> None:
        self.load, self.url, self.client_id, self.pairs, self.http = load, url, client_id, pairs, http
        self.pair = pairs.pop()

    async def mcp(self, op: str, method: str, params: dict[str, Any], token: str | None) -> None:
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": method,
            "User-Agent": self.load.agent(),
        }
        if "name" in params:
            headers["Mcp-Name"] = params["name"]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        action = "mcp.tool_call" if method == "tools/call" else "mcp.tools_listed"
        phase = self.load.phase
        try:
            response = await self.http.post(f"{self.url}/t/acme/mcp/demo", json=_rpc_body(method, params),
                                            headers=headers)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - what the client saw
            self.load.samples.append(Sample(time.monotonic(), phase, op, False, f"connection: {type(exc).__name__}"))
            return
        ok, error, answered = _classify(response)
        self.load.samples.append(Sample(time.monotonic(), phase, op, ok, error, action if answered else ""))

    async def refresh(self) -> None:
        phase = self.load.phase
        try:
            response = await self.http.post(
                f"{self.url}/t/acme/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": self.pair["refresh_token"],
                      "client_id": self.client_id},
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            self.load.samples.append(
                Sample(time.monotonic(), phase, "refresh", False, f"connection: {type(exc).__name__}")
            )
            self._next_pair()  # the answer was lost: the old token may have been rotated
            return
        if response.status_code == 200:
            self.pair = response.json()
            self.load.samples.append(Sample(time.monotonic(), phase, "refresh", True))
            return
        try:
            body = response.json()
            error = f"HTTP {response.status_code} {body['error']}: {body.get('error_description', '')}"
        except (ValueError, KeyError, TypeError):
            error = f"HTTP {response.status_code} NOT OAUTH JSON: {response.text[:80]!r}"
        self.load.samples.append(Sample(time.monotonic(), phase, "refresh", False, error))
        if response.status_code != 503:
            self._next_pair()

    def _next_pair(self) -> None:
        if self.pairs:
            self.pair = self.pairs.pop()

    async def run(self) -> None:
        turn = 0
        while not self.load.stop:
            turn += 1
            token = self.pair["access_token"]
            if turn % 4 == 1:
                await self.mcp("tools/list", "tools/list", {}, token)
            elif turn % 4 == 2:
                await self.mcp("tools/call", "tools/call", HELLO, token)
            elif turn % 4 == 3:
                await self.mcp("login tool", "tools/call", {"name": "oauth_start", "arguments": {}}, None)
            elif turn % 8 == 0:
                await self.refresh()
            else:
                await self.mcp("tools/call", "tools/call", HELLO, token)
            await asyncio.sleep(PAUSE * (0.5 + random.random()))  # noqa: S311 - spreading load, not security


@dataclass
class Fault:
    name: str
    began: float = 0.0
    back: float = 0.0


def report(fault: Fault, samples: list[Sample], end: float) -> dict[str, Any]:
    during = [s for s in samples if fault.began <= s.at < fault.back]
    after = [s for s in samples if fault.back <= s.at < end]
    failed_after = [s for s in after if not s.ok]
    errors = collections.Counter(s.error for s in during + after if not s.ok)
    recovery = (max(s.at for s in failed_after) - fault.back) if failed_after else 0.0
    served_by_op = collections.Counter(s.op for s in during if s.ok)
    failed_by_op = collections.Counter(s.op for s in during if not s.ok)
    say(f"\n== {fault.name}: away {fault.back - fault.began:.1f} s")
    say(f"   during the fault: {sum(served_by_op.values())} served, {sum(failed_by_op.values())} failed")
    for op in sorted(set(served_by_op) | set(failed_by_op)):
        say(f"     {op:<11} served {served_by_op[op]:>5}  failed {failed_by_op[op]:>5}")
    say(f"   after it was back: {len(after) - len(failed_after)} served, {len(failed_after)} failed")
    say(f"   recovery: {recovery:.2f} s after the service was back (target ≤ {RECOVERY_TARGET:.0f} s)")
    say("   errors clients saw:" + ("" if errors else " none"))
    for error, count in errors.most_common():
        say(f"     {count:>5} × {error}")
    return {"recovery": recovery, "bad": [e for e in errors if "NOT " in e]}


def count_events(database_url: str, agents: dict[str, str]) -> dict[tuple[str, str], int]:
    import psycopg

    found: dict[tuple[str, str], int] = {}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT user_agent, action, count(*) FROM tenant_acme.audit_auditevent "
            "WHERE user_agent = ANY(%s) GROUP BY 1, 2",
            (list(agents.values()),),
        ).fetchall()
    for agent, action, count in rows:
        found[(agent, action)] = count
    return found


def get_pairs(url: str, client_id: str, count: int) -> list[dict[str, Any]]:
    from rbac.demo import DEMO
    from tests.support.mcp import Committed, get_tokens

    class Server:
        pass

    server = Server()
    server.url = url  # type: ignore[attr-defined]
    scope = " ".join(["openid", "email", "offline_access", *DEMO["acme"]["scopes"]])
    committed = Committed({"acme": client_id})
    return [get_tokens(server, committed, "alice@acme.test", scope=scope) for _ in range(count)]  # type: ignore[arg-type]


def register_client(url: str) -> str:
    import httpx2

    response = httpx2.post(
        f"{url}/t/acme/oauth/register",
        json={"client_name": "faults bench", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]},
        timeout=30,
    )  # fmt: skip
    if response.status_code != 201:
        raise SystemExit(f"client registration failed: {response.status_code} {response.text[:300]}")
    return response.json()["client_id"]


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def main() -> int:  # noqa: C901, PLR0915 - one scripted run, read top to bottom
    work = Path(tempfile.mkdtemp(prefix="authsec-faults-"))
    postgres, redis, bao = ThrowawayPostgres(), ThrowawayRedis(), ThrowawayOpenBao()
    topology: Topology | None = None
    status = 0
    try:
        started = time.monotonic()
        postgres.init().start()
        database_url = postgres.create_database("authsec_faults")
        redis.start()
        bao.start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_", "REDIS_", "VAULT_"))},
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "VAULT_ADDR": bao.addr,
            "VAULT_TOKEN": bao.token,
            "DEBUG": "0",
            "AUTHSEC_PUBLIC_URL": "http://127.0.0.1",  # the topology's processes get HAProxy's
            "SECRET_KEY": secrets.token_urlsafe(50),
            "AUTHSEC_DEMO_PASSWORD": PASSWORD,
            "AUDIT_SPOOL_DIR": str(work / "spool"),
        }
        for args in (("migrate_schemas", "-v", "0"), ("seed_demo", "--force")):
            done = manage(env, *args)
            if done.returncode != 0:
                raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        names = ("DATABASE_URL", "REDIS_URL", "VAULT_ADDR", "VAULT_TOKEN", "DEBUG", "SECRET_KEY",
                 "AUTHSEC_DEMO_PASSWORD", "AUTHSEC_PUBLIC_URL")  # fmt: skip
        os.environ.update({name: env[name] for name in names})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")
        import django

        django.setup()
        logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
        backing = Backing(database_url, redis.url, bao.addr, bao.token)
        topology = Topology(backing, workdir=work / "topology", env={"AUDIT_SPOOL_DIR": str(work / "spool")})
        topology.start()
        client_id = register_client(topology.url)
        pairs = get_pairs(topology.url, client_id, CLIENTS * 3)
        ports = [node.port for node in topology.nodes.values()]
        say(f"set-up: {time.monotonic() - started:.0f} s (Postgres {postgres.port}, Redis {redis.port}, "
            f"OpenBao {bao.port}, HAProxy {topology.url}, nodes {ports})")  # fmt: skip
        say(
            f"load: {CLIENTS} clients, {PAUSE * 1000:.0f} ms pause; outages of {OUTAGE:.0f} s; {AFTER:.0f} s after each"
        )

        load = Load()
        faults: list[Fault] = []

        def break_redis() -> None:
            redis.stop()
            time.sleep(OUTAGE)
            redis.start()

        def break_vault() -> None:
            bao.stop()
            time.sleep(OUTAGE)
            bao.start()

        def restart_postgres() -> None:
            postgres.restart()

        def kill_node() -> None:
            node = topology.nodes["web1"]  # type: ignore[union-attr]
            assert node.popen is not None
            os.killpg(node.popen.pid, signal.SIGKILL)  # the web process and its audit process at once
            node.popen.wait()
            time.sleep(OUTAGE / 2)
            topology.restart_node("web1")  # type: ignore[union-attr]

        plan = [("redis stopped", break_redis), ("openbao stopped", break_vault),
                ("postgres restarted", restart_postgres), ("web node SIGKILLed", kill_node)]  # fmt: skip

        async def drive() -> None:
            import httpx2

            limits = httpx2.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
            async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
                clients = [Client(load, topology.url, client_id, pairs, http) for _ in range(CLIENTS)]  # type: ignore[union-attr]
                tasks = [asyncio.create_task(client.run()) for client in clients]
                await asyncio.sleep(STEADY)
                for name, action in plan:
                    load.phase = name.split()[0] + "-before"
                    await asyncio.sleep(STEADY)
                    load.phase = name.replace(" ", "-")
                    fault = Fault(name, began=time.monotonic())
                    await asyncio.to_thread(action)
                    fault.back = time.monotonic()
                    faults.append(fault)
                    await asyncio.sleep(AFTER)
                load.phase = "end"
                await asyncio.sleep(1)
                load.stop = True
                await asyncio.gather(*tasks)

        asyncio.run(drive())
        ends = [f.began for f in faults[1:]] + [time.monotonic()]
        worst = []
        for fault, end in zip(faults, ends, strict=True):
            outcome = report(fault, load.samples, end)
            worst.append(outcome["recovery"])
            if outcome["bad"]:
                status = 1
        if max(worst) > RECOVERY_TARGET:
            status = 1

        # Audit: each answered list and call has its event, once; wait for the writers (and adoption) to drain.
        expected = collections.Counter((load.agent_of[s.phase], s.audited) for s in load.samples if s.audited)
        written: dict[tuple[str, str], int] = {}

        def drained() -> bool:
            nonlocal written
            written = count_events(database_url, load.agent_of)
            return all(written.get(key, 0) >= count for key, count in expected.items())

        with contextlib.suppress(TimeoutError):
            wait_until(drained, 60, "audit events", interval=1)
        time.sleep(2)
        written = count_events(database_url, load.agent_of)
        say("\n== audit events (mcp.tool_call + mcp.tools_listed), expected vs written, by phase")
        lost_total = 0
        for phase, agent in load.agent_of.items():
            want = sum(count for (a, _), count in expected.items() if a == agent)
            got = sum(count for (a, _), count in written.items() if a == agent)
            lost = max(0, want - got)
            lost_total += lost
            say(f"   {phase:<28} expected {want:>6}  written {got:>6}  lost {lost}"
                + (f"  duplicated {got - want}" if got > want else ""))  # fmt: skip
        say(f"   total lost: {lost_total} (target 0)")
        if lost_total:
            status = 1
        for schema in ("acme", "public"):
            verified = manage(env, "verify_audit", schema)
            say(f"verify_audit {schema}: {(verified.stdout or verified.stderr).strip()[:200]}")
            if verified.returncode != 0:
                status = 1
        say(f"\n{'ALL TARGETS MET' if status == 0 else 'A TARGET WAS MISSED'}")
        return status
    finally:
        if topology is not None:
            topology.stop()
        redis.stop()
        bao.remove()
        postgres.remove()
        if status == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
