#!/usr/bin/env python3
"""Soak (`make soak`): a bounded mixed load for SOAK_MINUTES (default 20), the resident memory of every process
sampled once a minute, and each process's growth after the warm-up (docs/benchmarks.md, "Memory").

The mix, over HTTP only, as real clients do it:
- steady clients: a bearer token from a full code flow, an MCP session, tools/list and tools/call in a loop,
  the token refreshed every few minutes (each refresh is a new token, so a new entry in every per-token cache);
- newcomers: a new user (the tenant's user service, as the dashboard creates one), a role bound to them through
  the management API, a new DCR client, their code flow with offline access, a session with a list and calls,
  a refresh and more calls; sessions are closed (DELETE) as SDK clients do, except every SOAK_ABANDON_EVERY-th
  (default 10th), whose client goes away without a word (the session manager ends it after its idle timeout);
- login tools: `oauth_start` on a fresh MCP session, the browser's sign-in and confirmation, then tools/list and a
  call with the login session;
- an admin: roles created, bound, unbound and deleted through the management API (each one an RBAC version).

The processes: the two-node topology of `tests.support.topology` (HAProxy from deploy/haproxy.cfg in front of two
uvicorn nodes, each with its audit process, a Celery worker and beat), on the configured Postgres, Redis and
OpenBao, in tenant `soak` (SOAK_TENANT) of the database `make soak` names (SOAK_DATABASE, default authsec_soak).
SOAK_NODES=1 runs one uvicorn node without HAProxy instead. Every process of each group is sampled (a web node's
audit process on its own). It measures and exits 0 unless a process died; the figures are compared with the
targets (≤ 10 MB growth per process after the warm-up, 0 errors) in the output.

Diagnostics: SOAK_TRACEMALLOC=1 starts the web nodes with `authsec_site.lib.memtrace` on and asks them for an
allocation diff at the end of the warm-up and at the end (files under .local/soak/).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

logging.getLogger("httpx2").setLevel(logging.WARNING)

import httpx2  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from accounts import services as account_services  # noqa: E402
from accounts.models import User  # noqa: E402
from authsec_site.lib import vault  # noqa: E402
from mcp_endpoint.registry import ensure_loaded, registry  # noqa: E402
from mcp_endpoint.services import seed_tool_policies  # noqa: E402
from oauth import client_services, keys  # noqa: E402
from rbac import services as rbac_services  # noqa: E402
from rbac.models import Application, Role, Scope  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import create_tenant, ensure_public_tenant  # noqa: E402
from tests.support.topology import Backing, Topology  # noqa: E402

ACTOR = "soak"
SLUG = os.environ.get("SOAK_TENANT", "soak")  # a tenant of its own per concurrent run
APP = "soak"
ADMIN_EMAIL = f"admin@{SLUG}.test"
NODES = int(os.environ.get("SOAK_NODES", "2"))  # 1: one web node without HAProxy (a diagnostic)
MINUTES = float(os.environ.get("SOAK_MINUTES", "20"))
WARMUP_MINUTES = float(os.environ.get("SOAK_WARMUP_MINUTES", "3"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "60"))
STEADY_CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
RATE = float(os.environ.get("SOAK_RATE", "60"))  # steady MCP requests/s in all (bounded load)
NEWCOMER_EVERY = float(os.environ.get("SOAK_NEWCOMER_SECONDS", "4"))
LOGIN_TOOLS_EVERY = float(os.environ.get("SOAK_LOGIN_SECONDS", "10"))
ADMIN_EVERY = float(os.environ.get("SOAK_ADMIN_SECONDS", "5"))
ABANDON_EVERY = int(os.environ.get("SOAK_ABANDON_EVERY", "10"))  # every n-th newcomer session is never closed
REFRESH_EVERY = float(os.environ.get("SOAK_REFRESH_SECONDS", "120"))
TARGET_MB = 10.0
PROTOCOL = "2025-06-18"
ROLES = {"soak-reader": ["read"], "analyst": ["read"], "manager": ["read", "write"], "deployer": ["write"]}
CALLS = [
    {"name": "calculator", "arguments": {"operation": "add", "a": 2, "b": 3}},
    {"name": "hello", "arguments": {"name": "soak"}},
]
OUT = ROOT / ".local" / "soak"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


# --- Data (idempotent; every run makes its own users and clients, named by the run) -----------------------------


def ensure_data(password: str) -> Tenant:
    ensure_public_tenant()
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant = create_tenant(
            actor=ACTOR, slug=SLUG, name="Soak", admin_email=ADMIN_EMAIL, admin_password=password
        ).tenant
    ensure_loaded()
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email=ADMIN_EMAIL)
        account_services.set_user_password(admin, actor=ACTOR, password=password)
        client_services.set_dynamic_registration(actor=ACTOR, mode="open")
        for name, scopes in ROLES.items():
            role = Role.objects.filter(name=name).first() or rbac_services.save_role(Role(name=name), actor=ACTOR)
            for scope in scopes:
                role.scopes.add(
                    Scope.objects.filter(name=scope).first() or rbac_services.save_scope(Scope(name=scope), actor=ACTOR)
                )
        if not Scope.objects.filter(name="admin").exists():  # the management API's scope, asked for by the admin
            rbac_services.save_scope(Scope(name="admin"), actor=ACTOR)
        app = Application.objects.filter(slug=APP).first()
        if app is None:
            app = rbac_services.save_application(
                Application(slug=APP, name="Soak tools", auth_mode="both"), actor=ACTOR
            )
        seed_tool_policies(actor=ACTOR, application=app, tools=registry.names())
        try:
            keys.private_jwk(keys.current_key())
        except vault.VaultError:  # a dev OpenBao forgets the private half on restart
            keys.create_signing_key(actor=ACTOR)
    return tenant


def new_user(tenant: Tenant, email: str, password: str) -> int:
    """A user as the dashboard creates one (the tenant's user service), with a password."""
    with schema_context(tenant.schema_name):
        user = User(email=email, full_name="Soak user")
        user.set_password(password)
        return account_services.save_user(user, actor=ACTOR).pk


# --- The processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """What serves the load: the URL clients use, and its processes by name (leader first: a web node, then its
    audit process; the worker, then its pool)."""

    url: str
    kind: str
    groups: Callable[[], dict[str, list[int]]]
    web: list[str]  # names of the web nodes
    stop: Callable[[], None]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"soak: a process exited with {proc.returncode} while starting (logs in {OUT})")
        with contextlib.suppress(httpx2.HTTPError):
            httpx2.get(url, timeout=2)
            return
        time.sleep(0.3)
    raise SystemExit(f"soak: {url} did not answer within {timeout:.0f} s")


def single_node(env: dict[str, str]) -> Served:
    """One uvicorn node (with its audit process), a Celery worker and beat, started here (SOAK_NODES=1)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**env, "AUTHSEC_PUBLIC_URL": url}
    web = _spawn(
        [sys.executable, "-m", "uvicorn", "authsec_site.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        + ["--lifespan", "on", "--no-proxy-headers", "--log-level", "warning", "--no-access-log"],
        env,
        OUT / "web.log",
    )
    celery = [sys.executable, "-m", "celery", "-A", "authsec_site"]
    worker = _spawn(
        [*celery, "worker", "-l", "warning", "--concurrency", "1", "-n", f"soak-{port}@%h"], env, OUT / "worker.log"
    )
    beat = _spawn([*celery, "beat", "-l", "warning", "-s", str(OUT / f"beat-{port}")], env, OUT / "beat.log")
    procs = {"web": web, "worker": worker, "beat": beat}

    def stop() -> None:
        for proc in reversed(procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def groups() -> dict[str, list[int]]:
        return {name: [proc.pid, *child_pids(proc.pid)] for name, proc in procs.items() if proc.poll() is None}

    try:
        _wait_http(f"{url}/healthz", web)
    except BaseException:
        stop()
        raise
    return Served(url, "one web node, a worker and beat", groups, ["web"], stop)


def two_nodes(env: dict[str, str]) -> Served:
    """`tests.support.topology`: HAProxy in front of two uvicorn nodes, a Celery worker and beat."""
    extra = {key: env[key] for key in ("AUTHSEC_TRACEMALLOC_DIR", "AUTHSEC_TRACEMALLOC_FRAMES") if key in env}
    top = Topology(Backing.from_env(), workdir=OUT / "topology", nodes=2, env=extra, start_timeout=300.0)
    top.__enter__()
    return Served(top.url, "two web nodes behind HAProxy, a worker and beat", top.processes, list(top.nodes), top.stop)


def start(env: dict[str, str]) -> Served:
    return single_node(env) if NODES == 1 else two_nodes(env)


# --- Memory ---------------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    found.append(int(entry))
    return sorted(found)


def processes(served: Served) -> dict[str, int]:
    """Every process to sample by name: each group's leader, a web node's audit process, the worker's pool."""
    named = {}
    for name, pids in served.groups().items():
        for index, pid in enumerate(pids):
            if index == 0:
                named[name] = pid
            elif name in served.web:
                named[f"{name}.audit" if index == 1 else f"{name}.{index}"] = pid
            else:
                named[f"{name}.{index}"] = pid
    return named


# --- The load -------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    requests: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    samples: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)

    def ok(self, kind: str) -> None:
        self.requests[kind] += 1

    def fail(self, kind: str, what: str) -> None:
        self.requests[kind] += 1
        self.errors[f"{kind}: {what[:160]}"] += 1


class Failed(Exception):
    pass


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def hidden(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


class Soak:
    def __init__(self, base: str, tenant: Tenant, password: str, stats: Stats, until: float) -> None:
        self.base, self.tenant, self.password, self.stats, self.until = base, tenant, password, stats, until
        self.endpoint = f"{base}/t/{SLUG}/mcp/{APP}"
        self.run = secrets.token_hex(3)
        self.counter = 0
        self.users: list[str] = []
        self.admin_token = ""
        self.admin_tokens: dict[str, Any] = {}
        self.newcomer_sessions = 0

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=self.base, follow_redirects=False, timeout=float(os.environ.get("SOAK_HTTP_TIMEOUT", "60"))
        )

    async def call(self, kind: str, coro: Any) -> Any:
        """Await one request, counting it; raises `Failed` (counted) on a transport error."""
        try:
            response = await coro
        except httpx2.HTTPError as exc:
            self.stats.fail(kind, f"{type(exc).__name__}")
            raise Failed(kind) from None
        return response

    def expect(self, kind: str, response: Any, *statuses: int) -> Any:
        if response.status_code not in statuses:
            self.stats.fail(kind, f"HTTP {response.status_code} {response.text[:120]!r}")
            raise Failed(kind)
        self.stats.ok(kind)
        return response

    # OAuth ----------------------------------------------------------------------------------------------------

    async def register(self, http: httpx2.AsyncClient, name: str, redirect: str) -> str:
        body = {
            "client_name": name,
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }
        response = await self.call("dcr", http.post(f"/t/{SLUG}/oauth/register", json=body))
        return self.expect("dcr", response, 201).json()["client_id"]

    async def sign_in(self, http: httpx2.AsyncClient, email: str, password: str) -> None:
        page = self.expect("login page", await self.call("login page", http.get(f"/t/{SLUG}/accounts/login/")), 200)
        form = {**hidden(page.text), "username": email, "password": password}
        headers = {"Referer": f"{self.base}/t/{SLUG}/"}
        response = await self.call("login", http.post(f"/t/{SLUG}/accounts/login/", data=form, headers=headers))
        self.expect("login", response, 302)

    async def authorize(self, http: httpx2.AsyncClient, url: str) -> str:
        """Open an authorization URL signed in (consenting when asked); the redirect's Location."""
        response = await self.call("authorize", http.get(url))
        if response.status_code == 200:
            form = {**hidden(response.text), "allow": "Authorize"}
            response = await self.call("authorize", http.post(url, data=form, headers={"Referer": self.base + url}))
        return self.expect("authorize", response, 302).headers["location"]

    async def code_flow(self, email: str, password: str, scope: str, resource: str | None) -> dict[str, Any]:
        """A new DCR client, the user's sign-in, consent, and the code exchange: the token response."""
        redirect = f"http://127.0.0.1:{random.randint(20000, 60000)}/callback"
        async with self.http() as http:
            client_id = await self.register(http, f"soak client {self.run}", redirect)
            await self.sign_in(http, email, password)
            verifier, challenge = pkce()
            params = {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect,
                "scope": scope,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": secrets.token_urlsafe(8),
            }
            if resource:
                params["resource"] = resource
            location = await self.authorize(http, f"/t/{SLUG}/oauth/authorize?{urlencode(params)}")
            query = parse_qs(urlparse(location).query)
            if "code" not in query:
                self.stats.fail("authorize", f"no code: {location}")
                raise Failed("authorize")
            code = query["code"][0]
            data = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": client_id,
                "code_verifier": verifier,
            }
            response = await self.call("token", http.post(f"/t/{SLUG}/oauth/token", data=data))
            tokens = self.expect("token", response, 200).json()
            tokens["client_id"] = client_id
            return tokens

    async def refresh(self, tokens: dict[str, Any]) -> dict[str, Any]:
        data = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": tokens["client_id"],
        }
        async with self.http() as http:
            response = await self.call("refresh", http.post(f"/t/{SLUG}/oauth/token", data=data))
        fresh = self.expect("refresh", response, 200).json()
        fresh["client_id"] = tokens["client_id"]
        return fresh

    # MCP ----------------------------------------------------------------------------------------------------

    async def open_session(self, http: httpx2.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
        """initialize + notifications/initialized; the headers of the session's later requests."""
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL, **headers}
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}},
        }
        response = await self.call("initialize", http.post(self.endpoint, json=init, headers=headers))
        session = self.expect("initialize", response, 200).headers.get("mcp-session-id")
        if session:
            headers = {**headers, "Mcp-Session-Id": session}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        self.expect(
            "initialize", await self.call("initialize", http.post(self.endpoint, json=note, headers=headers)), 202
        )
        return headers

    async def rpc(
        self, http: httpx2.AsyncClient, headers: dict[str, str], method: str, params: dict | None = None
    ) -> Any:
        kind = method if method != "tools/call" else f"tools/call {params['name'] if params else ''}"
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": random.randint(1, 1 << 30), "method": method}
        if params is not None:
            body["params"] = params
        response = await self.call(kind, http.post(self.endpoint, json=body, headers=headers))
        if response.status_code != 200:
            self.stats.fail(kind, f"HTTP {response.status_code} {response.text[:120]!r}")
            raise Failed(kind)
        message = response.json()
        if "error" in message or message.get("result", {}).get("isError"):
            self.stats.fail(kind, json.dumps(message.get("error") or message["result"])[:160])
            raise Failed(kind)
        self.stats.ok(kind)
        return message["result"]

    async def close_session(self, http: httpx2.AsyncClient, headers: dict[str, str]) -> None:
        """DELETE the session, as SDK clients do when they close."""
        response = await self.call("close session", http.delete(self.endpoint, headers=headers))
        self.expect("close session", response, 200)

    async def use(self, http: httpx2.AsyncClient, headers: dict[str, str], calls: int) -> None:
        tools = {tool["name"] for tool in (await self.rpc(http, headers, "tools/list"))["tools"]}
        for _ in range(calls):
            call = random.choice([c for c in CALLS if c["name"] in tools] or CALLS[:1])
            await self.rpc(http, headers, "tools/call", call)

    # Actors ----------------------------------------------------------------------------------------------------

    def next_email(self) -> str:
        self.counter += 1
        return f"soak-{self.run}-{self.counter}@soak.test"

    async def make_user(self, role: str) -> str:
        email = self.next_email()
        user_id = await asyncio.to_thread(new_user, self.tenant, email, self.password)
        async with self.http() as http:
            headers = {"Authorization": f"Bearer {self.admin_token}"}
            body = {"role": role, "user": user_id}
            response = await self.call(
                "api role-binding", http.post(f"/t/{SLUG}/api/role-bindings/", json=body, headers=headers)
            )
            self.expect("api role-binding", response, 201)
        self.users.append(email)
        return email

    async def steady(self, index: int) -> None:
        """One long-lived client: list and call at its share of RATE; a refreshed token every REFRESH_EVERY."""
        email = await self.make_user("soak-reader" if index % 2 else "analyst")
        tokens = await self.code_flow(email, self.password, "openid email read offline_access", self.endpoint)
        pause = STEADY_CLIENTS / RATE
        while time.monotonic() < self.until:
            refresh_at = time.monotonic() + REFRESH_EVERY
            async with self.http() as http:
                try:
                    headers = await self.open_session(http, {"Authorization": f"Bearer {tokens['access_token']}"})
                    while time.monotonic() < min(refresh_at, self.until):
                        started = time.monotonic()
                        if random.random() < 0.2:
                            await self.rpc(http, headers, "tools/list")
                        else:
                            await self.rpc(http, headers, "tools/call", random.choice(CALLS))
                        await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))
                    await self.close_session(http, headers)
                except Failed:
                    await asyncio.sleep(1)
            with contextlib.suppress(Failed):
                tokens = await self.refresh(tokens)

    async def newcomers(self) -> None:
        while time.monotonic() < self.until:
            started = time.monotonic()
            with contextlib.suppress(Failed):
                email = await self.make_user(random.choice(list(ROLES)))
                tokens = await self.code_flow(email, self.password, "openid email read offline_access", self.endpoint)
                async with self.http() as http:
                    headers = await self.open_session(http, {"Authorization": f"Bearer {tokens['access_token']}"})
                    await self.use(http, headers, 3)
                    await self.close_session(http, headers)
                tokens = await self.refresh(tokens)
                async with self.http() as http:
                    headers = await self.open_session(http, {"Authorization": f"Bearer {tokens['access_token']}"})
                    await self.use(http, headers, 2)
                    self.newcomer_sessions += 1
                    if self.newcomer_sessions % ABANDON_EVERY:  # else the client goes away without closing it
                        await self.close_session(http, headers)
            await asyncio.sleep(max(0.0, NEWCOMER_EVERY - (time.monotonic() - started)))

    async def login_tools(self) -> None:
        while time.monotonic() < self.until:
            started = time.monotonic()
            with contextlib.suppress(Failed):
                if self.users:
                    await self.one_login(random.choice(self.users))
            await asyncio.sleep(max(0.0, LOGIN_TOOLS_EVERY - (time.monotonic() - started)))

    async def one_login(self, email: str) -> None:
        async with self.http() as agent, self.http() as browser:
            agent_headers = await self.open_session(agent, {"User-Agent": "soak-agent/1"})
            result = await self.rpc(agent, agent_headers, "tools/call", {"name": "oauth_start", "arguments": {}})
            started = json.loads(result["content"][0]["text"])
            await self.sign_in(browser, email, self.password)
            callback = await self.authorize(browser, started["authorization_url"].removeprefix(self.base))
            response = await self.call("login callback", browser.get(callback.removeprefix(self.base)))
            confirm = self.expect("login callback", response, 302).headers["location"].removeprefix(self.base)
            page = self.expect("login confirm", await self.call("login confirm", browser.get(confirm)), 200)
            form = {**hidden(page.text), "user_code": started["user_code"], "action": "confirm"}
            response = await self.call(
                "login confirm",
                browser.post(f"/t/{SLUG}/mcp-login/confirm", data=form, headers={"Referer": self.base + confirm}),
            )
            self.expect("login confirm", response, 200)
            await self.close_session(agent, agent_headers)
        async with self.http() as http:
            headers = await self.open_session(http, {"X-AuthSec-Session": started["session_id"]})
            await self.use(http, headers, 2)
            await self.close_session(http, headers)

    async def admin(self) -> None:
        """RBAC edits through the management API: a role created, bound to a user, unbound, deleted."""
        n = 0
        refreshed = time.monotonic()
        while time.monotonic() < self.until:
            started = time.monotonic()
            n += 1
            if started - refreshed > REFRESH_EVERY:  # well before the admin's access token expires
                with contextlib.suppress(Failed):
                    self.admin_tokens = await self.refresh(self.admin_tokens)
                    self.admin_token, refreshed = self.admin_tokens["access_token"], started
            with contextlib.suppress(Failed):
                async with self.http() as http:
                    headers = {"Authorization": f"Bearer {self.admin_token}"}
                    name = f"soak-{self.run}-{n}"
                    api = f"/t/{SLUG}/api"
                    role = self.expect(
                        "api role",
                        await self.call("api role", http.post(f"{api}/roles/", json={"name": name}, headers=headers)),
                        201,
                    ).json()
                    if self.users:
                        user = random.choice(self.users)
                        found = self.expect(
                            "api users",
                            await self.call(
                                "api users", http.get(f"{api}/users/", params={"search": user}, headers=headers)
                            ),
                            200,
                        ).json()
                        user_id = found["results"][0]["id"] if "results" in found else found[0]["id"]
                        binding = self.expect(
                            "api role-binding",
                            await self.call(
                                "api role-binding",
                                http.post(
                                    f"{api}/role-bindings/", json={"role": name, "user": user_id}, headers=headers
                                ),
                            ),
                            201,
                        ).json()
                        self.expect(
                            "api role-binding",
                            await self.call(
                                "api role-binding",
                                http.delete(f"{api}/role-bindings/{binding['id']}/", headers=headers),
                            ),
                            204,
                        )
                    self.expect(
                        "api role",
                        await self.call("api role", http.delete(f"{api}/roles/{role['id']}/", headers=headers)),
                        204,
                    )
            await asyncio.sleep(max(0.0, ADMIN_EVERY - (time.monotonic() - started)))

    async def main(self, sampler: Any) -> None:
        try:
            tokens = await self.code_flow(ADMIN_EMAIL, self.password, "openid admin offline_access", None)
        except Failed:
            raise SystemExit(f"soak: no admin token: {dict(self.stats.errors)}") from None
        self.admin_token, self.admin_tokens = tokens["access_token"], tokens
        tasks = [asyncio.create_task(self.steady(i)) for i in range(STEADY_CLIENTS)]
        tasks += [asyncio.create_task(a()) for a in (self.newcomers, self.login_tools, self.admin)]
        tasks.append(asyncio.create_task(sampler()))
        await asyncio.gather(*tasks)


# --- Main -------------------------------------------------------------------------------------------------------


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    tenant = ensure_data(password)
    env = {**os.environ, "DEBUG": "0", "PYTHONPATH": str(ROOT)}
    if os.environ.get("SOAK_TRACEMALLOC"):
        env["AUTHSEC_TRACEMALLOC_DIR"] = str(OUT)
    top = start(env)
    stats = Stats()
    started = time.monotonic()
    until = started + MINUTES * 60
    warm = started + WARMUP_MINUTES * 60
    print(f"soak: {MINUTES:g} min against {top.kind} at {top.url}; warm-up {WARMUP_MINUTES:g} min; "
          f"samples every {SAMPLE_SECONDS:g} s; {STEADY_CLIENTS} steady clients at {RATE:g} req/s in all, a newcomer "
          f"every {NEWCOMER_EVERY:g} s, a login-tools login every {LOGIN_TOOLS_EVERY:g} s, an RBAC edit every "
          f"{ADMIN_EVERY:g} s", flush=True)  # fmt: skip
    names: dict[str, int] = {}

    def signal_web() -> None:
        if os.environ.get("SOAK_TRACEMALLOC"):
            for name, pids in top.groups().items():
                if name in top.web:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pids[0], signal.SIGUSR2)

    async def sampler() -> None:
        signalled = False
        while True:
            names.update(processes(top))
            sample = {name: rss_mb(pid) for name, pid in names.items()}
            stats.samples.append((time.monotonic() - started, sample))
            total = sum(stats.requests.values())
            errors = sum(stats.errors.values())
            shown = "  ".join(f"{n}={v:.0f}" for n, v in sample.items() if v is not None)
            print(
                f"  {(time.monotonic() - started) / 60:5.1f} min  {total:7d} req  {errors:3d} err  RSS MB: {shown}",
                flush=True,
            )
            if not signalled and time.monotonic() >= warm:
                signal_web()  # the baseline of the allocation diff
                signalled = True
            if time.monotonic() >= until:
                return
            await asyncio.sleep(max(0.0, min(SAMPLE_SECONDS, until - time.monotonic())))

    try:
        asyncio.run(Soak(top.url, tenant, password, stats, until).main(sampler))
        signal_web()
        if os.environ.get("SOAK_TRACEMALLOC"):  # the diff takes a while in a traced process: wait for its file
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(list(OUT.glob("tracemalloc-*.txt"))) < len(top.web):
                time.sleep(1)
        time.sleep(2)
        dead = [name for name in top.web + ["worker", "beat"] if name not in top.groups()]
    finally:
        top.stop()
    report(stats, warm - started, dead)
    return 1 if dead else 0


def report(stats: Stats, warm_offset: float, dead: list[str]) -> None:
    after = [sample for sample in stats.samples if sample[0] >= warm_offset - 1]
    first, last = (after[0], after[-1]) if len(after) >= 2 else (stats.samples[0], stats.samples[-1])
    print()
    print(
        f"RSS growth after warm-up ({first[0] / 60:.1f} → {last[0] / 60:.1f} min), "
        f"target ≤ {TARGET_MB:g} MB per process:"
    )
    print(f"  {'process':<16} {'start MB':>9} {'after warm-up':>14} {'end MB':>8} {'growth':>8}")
    start = stats.samples[0][1]
    for name in last[1]:
        a, b = first[1].get(name), last[1].get(name)
        if a is None or b is None:
            print(f"  {name:<16} {'-':>9} {'-':>14} {'-':>8} {'gone':>8}")
            continue
        verdict = "PASS" if b - a <= TARGET_MB else "MISS"
        s = start.get(name)
        print(f"  {name:<16} {s if s is not None else 0:9.1f} {a:14.1f} {b:8.1f} {b - a:+8.1f} {verdict}")
    total, errors = sum(stats.requests.values()), sum(stats.errors.values())
    print(f"requests: {total} ({', '.join(f'{k} {v}' for k, v in sorted(stats.requests.items()))})")
    print(f"errors: {errors} (target 0) {'PASS' if errors == 0 else 'MISS'}")
    for what, count in stats.errors.most_common(15):
        print(f"  {count:5d}  {what}")
    if dead:
        print(f"processes that died: {', '.join(dead)}")


if __name__ == "__main__":
    sys.exit(main())
