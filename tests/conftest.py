"""Shared fixtures: real Postgres (one schema per tenant), Redis and OpenBao, started by `make test`.

Two tenants, acme and globex, are created once per session through the real `create_tenant` service and
committed, so live servers started by tests see them too. Tests run in a transaction that is rolled back.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as DjangoClient
from django_tenants.utils import schema_context

from accounts.models import User
from oauth import issuance
from oauth.models import Client, Consent
from rbac.demo import DEMO, seed_rbac
from rbac.grants import bump_version, clear_local_cache
from rbac.models import Application, Group, Resource, Role, Scope
from tenants.middleware import clear_routes
from tenants.models import Tenant
from tests.factories import OAuthClientFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.live import ROOT, LiveServer, free_port, live_server_env, uvicorn_flags
from tests.support.mcp import REDIRECT as MCP_REDIRECT
from tests.support.mcp import Committed, get_token
from tests.support.oauth import PASSWORD, REDIRECT, TEST_IPS, OAuthClients

FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


def pytest_configure(config: pytest.Config) -> None:
    """A fast password hasher first for the whole suite, before any session fixture hashes a password.

    PBKDF2 at Django's production cost takes ~0.4 s per hash. The production hashers stay listed after it.
    Servers the suite starts get the same through AUTHSEC_TEST_FAST_PASSWORD_HASHER (`live_server_env`)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not config.pluginmanager.has_plugin("tests.harness"):
        pytest.exit("xdist workers need their own Redis db and OpenBao: run through `make test` (-p tests.harness)", 2)
    if settings.PASSWORD_HASHERS[0] != FAST_HASHER:
        settings.PASSWORD_HASHERS = [FAST_HASHER, *settings.PASSWORD_HASHERS]


def _require_services() -> None:
    """Fail loudly (never skip) when a backing service is missing."""
    from django.core.cache import cache

    from authsec_site.lib import vault

    try:
        cache.set("tests:ping", "1", 5)
    except Exception as exc:
        pytest.exit(f"Redis is not reachable at REDIS_URL ({type(exc).__name__}); run the suite with `make test`", 2)
    try:
        vault.health()
        vault.token_is_valid()
    except vault.VaultError as exc:
        pytest.exit(f"OpenBao is not usable: {exc} Run the suite with `make test`.", 2)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    from tenants.services import create_tenant, ensure_public_tenant

    _require_services()
    if not connection.settings_dict["NAME"].startswith("test_"):
        # pytest-django only creates the test database when a collected test asks for the db.
        pytest.exit("Refusing to set up tenants outside a test database; select at least one db test.", 2)
    from django.core.cache import cache

    # A new test database reuses ids: drop what earlier runs cached (the test Redis db is ours alone).
    cache.clear()
    with django_db_blocker.unblock():
        ensure_public_tenant()
        for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Corporation")):
            create_tenant(
                actor="tests", slug=slug, name=name, admin_email=f"admin@{slug}.test", admin_password=ADMIN_PASSWORD
            )
        connection.set_schema_to_public()
    yield


@pytest.fixture(autouse=True)
def _public_schema_after_test() -> Iterator[None]:
    yield
    connection.set_schema_to_public()
    # The test's rows are rolled back, without the commit that would tell this process's copies of them.
    issuance.clear()
    clear_routes()


@pytest.fixture
def acme(db) -> Tenant:  # type: ignore[no-untyped-def]
    return Tenant.objects.get(slug="acme")


@pytest.fixture
def globex(db) -> Tenant:  # type: ignore[no-untyped-def]
    return Tenant.objects.get(slug="globex")


@pytest.fixture
def in_acme(acme: Tenant) -> Iterator[Tenant]:
    with schema_context(acme.schema_name):
        yield acme


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, tmp_path_factory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """The real root ASGI app under uvicorn, on the test database (committed data only)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    # Production mode (DEBUG off): real error pages, and the required settings must all be present.
    # OUTBOUND_ALLOW_LOOPBACK: the fake upstreams and services the live server calls listen on 127.0.0.1.
    env = live_server_env(AUTHSEC_PUBLIC_URL=url, DEBUG="0", OUTBOUND_ALLOW_LOOPBACK="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "authsec_site.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *uvicorn_flags(),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"uvicorn exited early:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"uvicorn did not start:\n{log.read_text()}")
    yield LiveServer(proc, url, log)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class DecisionCounter:
    """Counts runs of the decision engine (`rbac.engine.decide`) on this thread while `counting()` is open, through
    the interpreter's profile hook: the real engine runs, nothing stands in for it."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[DecisionCounter]:
        from rbac.engine import decide

        code = decide.__code__

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code is code:
                self.count += 1

        previous = sys.getprofile()
        sys.setprofile(profile)
        try:
            yield self
        finally:
            sys.setprofile(previous)


@pytest.fixture
def decisions() -> DecisionCounter:
    """How many times the decision engine ran (`with decisions.counting(): …`, then `decisions.count`)."""
    return DecisionCounter()


# --- Demo users and OAuth clients in acme (rolled back with the test) ----------------------------------------


@pytest.fixture
def demo_users(in_acme: Tenant) -> dict[str, object]:
    users = {}
    for email in DEMO["acme"]["users"]:
        user = UserFactory(email=email)
        user.set_password(PASSWORD)
        user.save()
        users[email] = user
    seed_rbac("acme")
    return users


@pytest.fixture
def clients(in_acme: Tenant) -> OAuthClients:
    public = OAuthClientFactory(name="Claude Desktop", redirect_uris=REDIRECT)
    secret = secrets.token_urlsafe(32)
    confidential = OAuthClientFactory(
        confidential=True, name="Web app", redirect_uris="https://app.example.com/cb", client_secret=secret
    )
    machine_secret = secrets.token_urlsafe(32)
    machine = OAuthClientFactory(machine=True, name="Nightly job", client_secret=machine_secret)
    return OAuthClients(public, confidential, secret, machine, machine_secret)


@pytest.fixture
def clean_throttle(in_acme: Tenant) -> Iterator[list[str]]:
    """Login-failure counters live in Redis and outlive the test's transaction: reset the ones a test uses.

    Yields a list a test appends the emails it fails to sign in with; the test IPs are always reset."""
    from django.core.cache import cache

    from accounts import throttle

    emails: list[str] = []

    def reset() -> None:
        with schema_context(in_acme.schema_name):  # cache keys carry the schema
            cache.delete_many(
                [throttle._key("ip", ip) for ip in TEST_IPS]  # noqa: SLF001 - the throttle's own key scheme
                + [throttle._key("account", email) for email in emails]  # noqa: SLF001
            )

    reset()
    yield emails
    reset()


# --- Committed demo data for live servers (module scope: committed once, removed after the module) ----------


@pytest.fixture(scope="module")
def committed(django_db_setup, django_db_blocker) -> Iterator[Committed]:  # type: ignore[no-untyped-def]
    """The demo users, RBAC data, application ``demo`` and a public client in acme and globex, committed."""
    client_ids = {}
    with django_db_blocker.unblock():
        for slug in ("acme", "globex"):
            with schema_context(f"tenant_{slug}"):
                for email in DEMO[slug]["users"]:
                    user = UserFactory(email=email)
                    user.set_password(PASSWORD)
                    user.save()
                seed_rbac(slug)
                client = OAuthClientFactory(name="MCP test client", redirect_uris=MCP_REDIRECT)
                client_ids[slug] = client.client_id
    yield Committed(client_ids)
    with django_db_blocker.unblock():
        for slug in ("acme", "globex"):
            with schema_context(f"tenant_{slug}"):
                Consent.objects.all().delete()
                Client.objects.filter(client_id=client_ids[slug]).delete()
                Application.objects.filter(slug="demo").delete()
                for model in (Role, Group, Scope, Resource):
                    model.objects.all().delete()
                User.objects.filter(email__in=list(DEMO[slug]["users"])).delete()


@pytest.fixture(scope="module")
def tokens(asgi_server: LiveServer, committed: Committed) -> Callable[[str], str]:
    """Tokens by email (acme, app demo), fetched once per module."""
    cache: dict[str, str] = {}

    def token(email: str) -> str:
        if email not in cache:
            cache[email] = get_token(asgi_server, committed, email)
        return cache[email]

    return token


# --- RBAC: a fresh grants cache, acme's admin signed in -------------------------------------------------------


@pytest.fixture
def fresh_grants_cache(acme: Tenant, globex: Tenant) -> Iterator[None]:
    """Test data is never committed, so signals never bump the grants version: start from a fresh one, or
    a user id reused from an earlier run could meet grants that run cached in Redis. Modules that build RBAC
    data by hand use it for every test (`pytest.mark.usefixtures("fresh_grants_cache")`)."""
    for tenant in (acme, globex):
        with schema_context(tenant.schema_name):
            bump_version()
    clear_local_cache()
    yield
    clear_local_cache()


@pytest.fixture
def admin(acme: Tenant) -> DjangoClient:
    """acme's first admin, logged in to acme's dashboard (the management API takes the same session)."""
    return log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
