"""Shared fixtures: real Postgres (one schema per tenant), Redis and OpenBao, started by `make test`.

Two tenants, acme and globex, are created once per session through the real `create_tenant` service and
committed, so live servers started by tests see them too. Tests run in a transaction that is rolled back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Tenant

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "correct-horse-battery-staple"
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


def pytest_configure(config: pytest.Config) -> None:
    """A fast password hasher first for the whole suite, before any session fixture hashes a password.

    PBKDF2 at Django's production cost takes ~0.4 s per hash. The production hashers stay listed after it.
    Servers the suite starts get the same through AUTHSEC_TEST_FAST_PASSWORD_HASHER (`live_server_env`)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not config.pluginmanager.has_plugin("tests.harness"):
        pytest.exit("xdist workers need their own Redis db and OpenBao: run through `make test` (-p tests.harness)", 2)
    if settings.PASSWORD_HASHERS[0] != FAST_HASHER:
        settings.PASSWORD_HASHERS = [FAST_HASHER, *settings.PASSWORD_HASHERS]


def _uvicorn_flags() -> list[str]:
    """uvicorn's flags as `make run` passes them (scripts/devstack.py), so the live-server tests cover them."""
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.UVICORN_FLAGS)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_server_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess of ours that must use the test database."""
    env = os.environ.copy()
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["AUTHSEC_TEST_FAST_PASSWORD_HASHER"] = "1"  # verifies the suite's fast hashes (settings: test_ db only)
    env.update(extra)
    return env


class LiveServer:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, tmp_path_factory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """The real root ASGI app under uvicorn, on the test database (committed data only)."""
    port = _free_port()
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
                *_uvicorn_flags(),
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
