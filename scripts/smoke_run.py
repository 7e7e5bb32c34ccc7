#!/usr/bin/env python3
"""CI smoke of the README's first command: `make run` in a fresh venv built from the runtime lock only.

Run by `.ci/run` before the test suite, as `python3 scripts/smoke_run.py` (stdlib only). It proves:

1. `make run VENV=.local/smoke-venv` (the venv deleted first, so it is built from `requirements.txt`
   alone, never the dev lock) starts in the background, its output captured in
   `.local/logs/smoke-make-run.log`, and `/healthz` answers `{"status": "ok"}`.
2. Web, worker and beat stay alive for at least `ALIVE_SECONDS`, and in that time beat sent the periodic
   `authsec_site.tasks.health_check` and the worker ran it: beat's "Sending due task health-check", the
   worker's "Task authsec_site.tasks.health_check[<id>] succeeded" and its "health check ok" line. The
   default interval is 60 s (`HEALTH_CHECK_INTERVAL`); the smoke runs with 5 s, the setting's minimum.
   `/healthz` then also reports the worker's last health check (`worker.last_health_check`).
3. A real `mcp` client (`mcp.client.auth.OAuthClientProvider`, run in the smoke venv as
   `scripts/smoke_run.py --mcp-client URL`) gets alice's token against `/t/acme/mcp/demo`: RFC 9728
   metadata → RFC 8414 metadata → dynamic client registration → authorization code + PKCE (S256) with
   `resource`, the scope chosen by the client itself. The browser part (login form with its CSRF token,
   consent form) is done over HTTP with a cookie jar, as a browser would. The seed's `demo` application is
   in `auth_mode` `both` (docs/mcp.md): anonymous requests are served and see only the login tools, and
   the 401 challenge comes when a protected tool is called. So the client does what a real client does
   there: it connects anonymously, calls the protected tool `hello` (→ 401 → OAuth → retried with the
   token), then lists the tools and must see exactly `ALICE_TOOLS` plus the five login tools.
4. SIGINT to `make run`'s process group (as Ctrl-C in a terminal) stops every process `make run` started
   (the process tree is recorded while it runs), and the machine's own Postgres/Redis/OpenBao that
   answered before the smoke still answer after it.

Any failure exits non-zero with the tail of the captured log. Whatever happens, the smoke leaves no
process of its own behind. `--reuse-venv` keeps an existing smoke venv (a quicker local re-run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".local" / "smoke-venv"
LOG = ROOT / ".local" / "logs" / "smoke-make-run.log"
ALIVE_SECONDS = 20.0
HEALTH_CHECK_INTERVAL = "5"
INSTALL_AND_START_TIMEOUT = 900.0  # a fresh venv: pip downloads the whole runtime lock first
EVIDENCE_TIMEOUT = 90.0
MCP_CLIENT_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0

# What the seed's RBAC gives alice@acme.test (rbac/demo.py: roles admin + developer, group engineering →
# scopes read/write, resources projects/analytics; docs/rbac.md). deploy_production needs the production
# resource and sensitive_operations the admin scope and production/sensitive-data, all required: not hers.
ALICE_TOOLS = frozenset(
    {
        "admin_dashboard",
        "admin_panel",
        "calculator",
        "create_resource",
        "engineering_tools",
        "hello",
        "list_my_repos",
        "view_analytics",
        "view_reports",
    }
)
# Listed for everyone at a `both` endpoint, a bearer token or not (docs/mcp.md, "Login tools").
LOGIN_TOOLS = frozenset({"oauth_start", "oauth_authenticate", "oauth_status", "oauth_logout", "oauth_user_info"})
DEMO_USER = "alice@acme.test"
CLIENT_NAME = "AuthSec CI smoke (mcp client)"
REDIRECT_URI = "http://127.0.0.1:9/smoke-callback"  # never served: the "browser" reads the redirect's Location

BEAT_SENT = re.compile(r"Sending due task health-check \(authsec_site\.tasks\.health_check\)")
WORKER_RAN = re.compile(r"Task authsec_site\.tasks\.health_check\[([0-9a-f-]{36})\] succeeded")
WORKER_OK = "health check ok: database=ok redis=ok vault=ok"


class SmokeFailure(Exception):
    """A step of the smoke did not hold; the message says which and what was seen."""


def say(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


# --- Processes --------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time in clock ticks, state) of `pid`, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19]), fields[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> dict[tuple[int, int], str]:
    """Every live process below `root` (by parent pid), keyed by (pid, start time) so a reused pid never counts."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None:
                children.setdefault(info[0], []).append((int(entry.name), info[1]))
    found: dict[tuple[int, int], str] = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found[(pid, start)] = _cmdline(pid)
            todo.append(pid)
    return found


def alive(key: tuple[int, int]) -> bool:
    """The process `key` still exists and is not a zombie (a zombie has ended; only its parent's wait is due)."""
    info = _stat(key[0])
    return info is not None and info[1] == key[1] and info[2] != "Z"


def role_of(cmdline: str) -> str | None:
    if "uvicorn" in cmdline and "authsec_site.asgi" in cmdline:
        return "web"
    if "celery" in cmdline and " worker" in cmdline:
        return "worker"
    if "celery" in cmdline and " beat" in cmdline:
        return "beat"
    return None


# --- Services and HTTP -------------------------------------------------------------------------------------


def tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def machine_services(env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """The Postgres, Redis and OpenBao `make run` will use, as host:port (its defaults when nothing is set)."""
    found: dict[str, tuple[str, int]] = {}
    for name, variable, default_port in (
        ("postgres", "DATABASE_URL", 5432),
        ("redis", "REDIS_URL", 6379),
        ("openbao", "VAULT_ADDR", 8200),
    ):
        parsed = urllib.parse.urlsplit(env.get(variable) or f"x://127.0.0.1:{default_port}")
        found[name] = (parsed.hostname or "127.0.0.1", parsed.port or default_port)
    return found


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# --- The smoke ----------------------------------------------------------------------------------------------


class Smoke:
    """`make run` under watch: its process tree, its log, and its clean stop."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = int(env.get("PORT") or 8000)
        self.base = f"http://127.0.0.1:{self.port}"
        self.make: subprocess.Popen[bytes] | None = None
        self.tree: dict[tuple[int, int], str] = {}
        self.timings: dict[str, float] = {}

    def log_text(self) -> str:
        return LOG.read_text(errors="replace") if LOG.exists() else ""

    def record_tree(self) -> None:
        if self.make is not None:
            self.tree.update(descendants(self.make.pid))

    def check_running(self) -> None:
        """make run and (once started) web, worker and beat are all still alive."""
        assert self.make is not None
        if self.make.poll() is not None:
            said = [line for line in self.log_text().splitlines() if "exited with code" in line]
            raise SmokeFailure(f"make run exited with code {self.make.returncode}: {' / '.join(said) or 'see below'}")
        self.record_tree()
        roles = {role_of(cmd) for key, cmd in self.tree.items() if alive(key)}
        started = {role_of(cmd) for cmd in self.tree.values()}
        for role in ("web", "worker", "beat"):
            if role in started and role not in roles:
                raise SmokeFailure(f"{role} died")

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            if check():
                return
            time.sleep(1)
        raise SmokeFailure(f"{what}: not seen within {timeout:.0f}s")

    def start(self) -> None:
        if tcp_answers("127.0.0.1", self.port):
            raise SmokeFailure(f"port {self.port} is already taken: the smoke would test someone else's server")
        LOG.parent.mkdir(parents=True, exist_ok=True)
        say(f"make run VENV={VENV.relative_to(ROOT)} (log: {LOG.relative_to(ROOT)})")
        with LOG.open("wb") as out:
            self.make = subprocess.Popen(
                ["make", "run", f"VENV={VENV.relative_to(ROOT)}"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGINT to it is Ctrl-C in its terminal
            )

    def healthy(self) -> bool:
        try:
            status, body = get_json(f"{self.base}/healthz")
        except (OSError, ValueError):
            return False
        if status == 200 and body.get("status") == "ok":
            return True
        say(f"/healthz answered {status}: {body}")
        return False

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to make run's process group; returns make's exit code."""
        assert self.make is not None
        self.record_tree()
        os.killpg(self.make.pid, signal.SIGINT)
        try:
            return self.make.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"make run still running {STOP_TIMEOUT:.0f}s after SIGINT") from None

    def cleanup(self) -> None:
        """Stop whatever is left of make run's tree (only on failure does anything remain)."""
        if self.make is None:
            return
        if self.make.poll() is None:
            self.record_tree()
            os.killpg(self.make.pid, signal.SIGINT)
            try:
                self.make.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.make.kill()
                self.make.wait()
        left = [key for key in self.tree if alive(key)]
        for key in left:
            say(f"killing left-over pid {key[0]}: {self.tree[key][:120]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(key[0], signal.SIGKILL)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # SIGTERM (e.g. a CI time-out) still runs the cleanup in `finally`


def run_smoke(reuse_venv: bool) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    env = os.environ.copy()
    env.setdefault("HEALTH_CHECK_INTERVAL", HEALTH_CHECK_INTERVAL)
    env.pop("VIRTUAL_ENV", None)
    services = machine_services(env)
    up_before = {name: tcp_answers(*address) for name, address in services.items()}
    smoke = Smoke(env)
    began = time.monotonic()
    if VENV.exists() and not reuse_venv:
        shutil.rmtree(VENV)
        smoke.timings["removing the previous smoke venv"] = time.monotonic() - began
    started = time.monotonic()
    try:
        smoke.start()
        smoke.wait(
            "the venv installed (devstack starting)",
            lambda: "[devstack]" in smoke.log_text(),
            INSTALL_AND_START_TIMEOUT,
        )
        installed_at = time.monotonic()
        smoke.timings["venv from the runtime lock (make install)"] = installed_at - started
        smoke.wait("/healthz reporting ok", smoke.healthy, INSTALL_AND_START_TIMEOUT)
        healthy_at = time.monotonic()
        smoke.timings["services + migrate + seed + start until /healthz ok"] = healthy_at - installed_at
        say(f"/healthz ok after {healthy_at - started:.0f}s")

        roles = {role_of(cmd) for cmd in smoke.tree.values()}
        if not {"web", "worker", "beat"} <= roles:
            raise SmokeFailure(f"make run did not start web, worker and beat (saw {sorted(map(str, roles))})")

        evidence_start = time.monotonic()
        task_ids: set[str] = set()

        def evidence() -> bool:
            text = smoke.log_text()
            task_ids.update(WORKER_RAN.findall(text))
            return bool(BEAT_SENT.search(text)) and bool(task_ids) and WORKER_OK in text

        smoke.wait("beat sending health-check and the worker running it", evidence, EVIDENCE_TIMEOUT)
        say(f"beat sent health-check and the worker ran it (task {sorted(task_ids)[0]})")
        _, body = get_json(f"{smoke.base}/healthz")
        last = (body.get("worker") or {}).get("last_health_check")
        if not last:
            raise SmokeFailure(f"/healthz does not report the worker's last health check: {body}")
        say(f"/healthz reports the worker's last health check at {last}")

        endpoint = f"{smoke.base}/t/acme/mcp/demo"
        say(f"mcp client: OAuth as {DEMO_USER} against {endpoint}")
        mcp_start = time.monotonic()
        try:
            client = subprocess.run(
                [str(VENV / "bin" / "python"), str(Path(__file__).resolve()), "--mcp-client", endpoint],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=MCP_CLIENT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"the mcp client did not finish within {MCP_CLIENT_TIMEOUT:.0f}s") from None
        smoke.timings["mcp client (discovery, DCR, login, consent, token, list)"] = time.monotonic() - mcp_start
        if client.returncode != 0:
            smoke.check_running()  # a dead web, worker or beat is the cause to report first
            output = f"{client.stdout}\n{client.stderr[-4000:]}"
            raise SmokeFailure(f"the mcp client failed ({client.returncode}):\n{output}")
        result = json.loads(client.stdout.strip().splitlines()[-1])
        expected = sorted(ALICE_TOOLS | LOGIN_TOOLS)
        if result["listed"] != expected:
            raise SmokeFailure(f"alice's tools: expected {expected}, listed {result['listed']}")
        say(f"mcp client: token scope {result['scope']!r}, requests {result['requests']}")
        say(f"mcp client: {result['hello']!r}; listed exactly alice's {len(ALICE_TOOLS)} tools + the login tools")

        smoke.wait(
            f"web, worker and beat alive for {ALIVE_SECONDS:.0f}s",
            lambda: time.monotonic() - evidence_start >= ALIVE_SECONDS,
            ALIVE_SECONDS + 5,
        )
        smoke.check_running()
        say(f"web, worker and beat alive for {time.monotonic() - evidence_start:.0f}s; sending SIGINT (Ctrl-C)")

        stop_start = time.monotonic()
        code = smoke.interrupt()
        smoke.timings["stop after SIGINT"] = time.monotonic() - stop_start
        say(f"make run exited with code {code} after SIGINT; {len(smoke.tree)} processes were started under it")
        deadline = time.monotonic() + 10
        while any(alive(key) for key in smoke.tree) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {key: cmd for key, cmd in smoke.tree.items() if alive(key)}
        if left:
            raise SmokeFailure(f"still running after the interrupt: {left}")
        for name, address in services.items():
            if up_before[name] and not tcp_answers(*address):
                raise SmokeFailure(f"{name} on {address[0]}:{address[1]} answered before the smoke and not after it")
        kept = ", ".join(f"{name} {host}:{port}" for name, (host, port) in services.items() if up_before[name])
        say(f"every process make run started is gone; still up: {kept}")
    except SmokeFailure as exc:
        print(f"\n[smoke] FAILED: {exc}\n[smoke] last lines of {LOG.relative_to(ROOT)}:", file=sys.stderr)
        print("\n".join(smoke.log_text().splitlines()[-80:]), file=sys.stderr, flush=True)
        return 1
    finally:
        smoke.cleanup()
    for what, seconds in smoke.timings.items():
        say(f"{seconds:6.1f}s  {what}")
    say(f"{time.monotonic() - began:6.1f}s  in all. PASSED")
    return 0


# --- The MCP client (runs inside the smoke venv) -------------------------------------------------------------


class HiddenFields(HTMLParser):
    """The hidden inputs of a page's forms (the CSRF token, the OAuth request's fields)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


def hidden_fields(page: str) -> dict[str, str]:
    parser = HiddenFields()
    parser.feed(page)
    return parser.fields


def page_error(page: str) -> str:
    """The OAuth error a page shows (`<p id="oauth-error">`), or its start when it shows none."""
    found = re.search(r'<p id="oauth-error">(.*?)</p>', page, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else page[:300]


def browser_login_and_consent(base: str, authorization_url: str, email: str, password: str) -> str:
    """A person at a browser: sign in on the tenant's login form, allow on the consent page.

    Returns the Location of the redirect back to the client (which carries `code`, `state` and `iss`)."""
    import httpx2  # the runtime venv's HTTP client (also mcp's); it keeps the cookie jar

    with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
        response = browser.get(authorization_url)
        if response.status_code != 302 or "/accounts/login/" not in response.headers.get("location", ""):
            raise SystemExit(f"authorize did not send the browser to the login page: {response.status_code}")
        login_url = response.headers["location"]
        page = browser.get(login_url)
        form = {**hidden_fields(page.text), "username": email, "password": password}
        response = browser.post(login_url, data=form, headers={"Referer": base + login_url})
        if response.status_code != 302:
            raise SystemExit(f"login refused: {response.status_code}")
        response = browser.get(authorization_url)
        if response.status_code != 200 or 'id="consent-form"' not in response.text:
            raise SystemExit(f"no consent page: {response.status_code} {page_error(response.text)}")
        form = {**hidden_fields(response.text), "allow": "Authorize"}
        response = browser.post(authorization_url, data=form, headers={"Referer": authorization_url})
        if response.status_code != 302:
            raise SystemExit(f"consent not accepted: {response.status_code} {page_error(response.text)}")
        return response.headers["location"]


def mcp_client(endpoint: str) -> int:
    """The standard `mcp` client's OAuth flow as alice; prints one JSON line: what it saw."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

    parts = urllib.parse.urlsplit(endpoint)
    base = f"{parts.scheme}://{parts.netloc}"
    password = os.environ.get("AUTHSEC_DEMO_PASSWORD", "authsec-demo")
    seen: dict[str, Any] = {"requests": []}

    class MemoryStorage:
        def __init__(self) -> None:
            self.tokens: OAuthToken | None = None
            self.client_info: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client_info

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client_info = client_info

    async def redirect_handler(authorization_url: str) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorization_url).query))
        if query.get("code_challenge_method") != "S256" or query.get("resource") != endpoint:
            raise SystemExit(f"the authorization request lacks PKCE S256 or resource: {query}")
        seen["location"] = await anyio.to_thread.run_sync(
            browser_login_and_consent, base, authorization_url, DEMO_USER, password
        )

    async def callback_handler() -> AuthorizationCodeResult:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(seen["location"]).query))
        if "code" not in query:
            raise SystemExit(f"the redirect carries no code: {query}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def record(request: httpx2.Request) -> None:
        path = request.url.path
        if "/.well-known/" in path or path.endswith(("/register", "/token", "/register/")):
            seen["requests"].append(f"{request.method} {path}")

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=endpoint,
        client_metadata=OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def main() -> None:
        http = httpx2.AsyncClient(auth=provider, timeout=60, event_hooks={"request": [record]})
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            anonymous = sorted(tool.name for tool in (await client.list_tools()).tools)
            if set(anonymous) != LOGIN_TOOLS:
                raise SystemExit(f"anonymous list is not just the login tools: {anonymous}")
            hello = await client.call_tool("hello", {})  # protected: 401 → the provider's OAuth flow
            seen["hello"] = hello.content[0].text
            seen["listed"] = sorted(tool.name for tool in (await client.list_tools()).tools)

    anyio.run(main)
    if storage.client_info is None or storage.tokens is None:
        raise SystemExit("the client holds no registration or no token")
    seen["scope"] = storage.tokens.scope
    seen.pop("location", None)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--mcp-client"] and len(sys.argv) == 3:
        sys.exit(mcp_client(sys.argv[2]))
    if sys.argv[1:] in ([], ["--reuse-venv"]):
        sys.exit(run_smoke(reuse_venv=sys.argv[1:] == ["--reuse-venv"]))
    print(__doc__)
    sys.exit(2)
