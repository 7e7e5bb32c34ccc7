"""pytest plugin of the test harness: each pytest-xdist worker gets backing services of its own.

`scripts/devstack.py test` loads it with ``-p tests.harness`` (it must run before pytest-django reads the
Django settings, which happens before any conftest is imported). In worker ``gwN`` of ``pytest -n K``:

- PostgreSQL: pytest-django's own suffix, database ``test_<name>_gwN``;
- Redis: database ``<db of REDIS_URL> + N`` (the cache, Celery's broker and results; the mirror's pub/sub
  channel carries the database number in its name, `authsec_site.lib.coherence.channel`), so one worker's
  ``cache.clear()`` at session start never empties the other's;
- OpenBao: gw0 keeps VAULT_ADDR; every other worker starts an in-memory dev server of its own (free port,
  random root token, stopped at the end), so the tenants acme and globex of both test databases never write
  the same Vault paths, policies, AppRoles or PKI mounts.

Servers the tests start inherit this through the environment (`tests.support.live.live_server_env`). Without
xdist (no ``PYTEST_XDIST_WORKER``) the plugin changes nothing.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.bao import DevBao

REDIS_DATABASES = 16  # Redis' default `databases`
_bao: DevBao | None = None


def worker_index() -> int | None:
    """N of xdist worker ``gwN``, None outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def redis_url_for_worker(url: str, index: int) -> str:
    """`url` with its database number moved up by `index` (refused past the server's last database)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    if base + index >= REDIS_DATABASES:
        raise pytest.UsageError(f"xdist worker gw{index} would need Redis database {base + index}; use fewer workers")
    return urlunsplit(parts._replace(path=f"/{base + index}"))


def start_openbao() -> tuple[str, str]:
    """An in-memory OpenBao dev server of this worker; returns (address, root token)."""
    global _bao
    try:
        _bao = DevBao(Path(tempfile.mkdtemp(prefix="authsec-bao-")) / "openbao.log", secrets.token_urlsafe(24))
        _bao.start()
    except RuntimeError as exc:
        raise pytest.UsageError(f"this worker's OpenBao dev server did not start: {exc}") from exc
    return _bao.addr, _bao.token


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]):  # type: ignore[no-untyped-def]
    """Point this worker's environment at its own Redis database and OpenBao before Django settings load."""
    index = worker_index()
    if index:
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            if os.environ.get(name):
                os.environ[name] = redis_url_for_worker(os.environ[name], index)
        os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"] = start_openbao()
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop this worker's OpenBao dev server (only ever the one this plugin started)."""
    if _bao is not None:
        _bao.stop()
