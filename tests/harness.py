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
xdist (no ``PYTEST_XDIST_WORKER``) the plugin changes none of that.

Two things for the suite's wall time (docs/running.md, "The test harness"):

- under xdist, the test files are handed out longest first (`LONG_FILES`, then by number of tests, as xdist's
  own `--loadscope-reorder` does), so no long file starts last and leaves the other worker idle at the end;
- the controller builds the published SDK's virtualenv (`scripts/sdk_venv.py`) in the background when it is
  missing, while the first files run, instead of the first SDK test waiting for its pip install.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.bao import DevBao

REDIS_DATABASES = 16  # Redis' default `databases`
ROOT = Path(__file__).resolve().parent.parent
# The files that take longest, longest first (`--durations` of a whole run; a wrong guess here costs balance,
# never a test). Under `--dist loadfile` a file runs whole on one worker: one of these handed out last (xdist's
# default puts files with few tests last) left the other worker idle for its whole length. The CIBA file, the
# first user of the SDK's venv, comes after a few others so the background build has a head start.
LONG_FILES = (
    "tests/operations/test_backup_restore.py",
    "tests/permission_matrix/test_dashboard.py",
    "tests/tenants/test_create_tenant.py",
    "tests/sdk/test_ciba_live.py",
    "tests/audit/test_pipeline.py",
    "tests/topology/test_two_nodes.py",
    "tests/authsec_site/test_settings.py",
    "tests/tenants/test_tenant_created.py",
    "tests/rbac/test_engine_properties.py",
    "tests/reliability/test_faults.py",
    "tests/mcp_endpoint/test_workers.py",
    "tests/mcp_endpoint/test_tenant_cache.py",
    "tests/services/test_vault_tenant.py",
    "tests/services/test_celery_rotation.py",
    "tests/authsec_site/test_prometheus_scrape.py",
    "tests/browser/test_application_pages.py",
    "tests/workloads/test_renewal_outage.py",
    "tests/mcp_endpoint/test_tool_modules.py",
)
_bao: DevBao | None = None
_sdk_build: subprocess.Popen | None = None


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


def long_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """`items` with their files in the order they should be handed out: `LONG_FILES` in that order, then the others
    by number of tests, most first (ties keep the collection order); a file's tests keep their order."""
    tests_in = Counter(item.nodeid.split("::", 1)[0] for item in items)
    rank = {path: index for index, path in enumerate(LONG_FILES)}
    files = sorted(tests_in, key=lambda path: (rank.get(path, len(rank)), -tests_in[path]))
    position = {path: index for index, path in enumerate(files)}
    return sorted(items, key=lambda item: position[item.nodeid.split("::", 1)[0]])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the files longest first (every worker sorts the same way; xdist checks that the
    collections agree, then hands the files out in this order)."""
    if worker_index() is not None:
        items[:] = long_files_first(items)


def start_sdk_venv_build() -> subprocess.Popen | None:
    """`scripts/sdk_venv.py` in the background when its venv is missing (its lock makes a test that needs the venv
    meanwhile wait for this build); its output goes to .local/sdk-venv-build.log."""
    spec = importlib.util.spec_from_file_location("sdk_venv", ROOT / "scripts" / "sdk_venv.py")
    assert spec is not None and spec.loader is not None
    sdk_venv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sdk_venv)
    if (sdk_venv.venv_dir() / ".complete").exists():
        return None
    log = ROOT / ".local" / "sdk-venv-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "sdk_venv.py")],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its pip if the run ends first
        )


def pytest_configure(config: pytest.Config) -> None:
    """In the xdist controller: hand files out in our order (not xdist's by-count one), start the SDK venv build."""
    global _sdk_build
    if worker_index() is None and config.getoption("dist", "no") != "no":
        config.option.loadscopereorder = False
        _sdk_build = start_sdk_venv_build()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop this worker's OpenBao dev server (only ever the one this plugin started); in the controller, stop the
    SDK venv build if it is still running (the run ended first: no marker, so the next `ensure()` starts over)."""
    if _bao is not None:
        _bao.stop()
    if _sdk_build is not None and _sdk_build.poll() is None:
        os.killpg(_sdk_build.pid, signal.SIGTERM)  # the group of the build we started: the script and its pip
        _sdk_build.wait(timeout=30)
