"""Reachability checks of the services AuthSec depends on (Postgres, Redis, Vault)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from authsec_site.lib import redis, vault

# The worker's last periodic health check (public schema's cache namespace, no expiry): read by /healthz.
WORKER_CHECK_KEY = "health:worker_last_check"


def check_database() -> str:
    """ "ok", or "error: <exception class>" when Postgres does not answer ``SELECT 1``."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - report, don't crash the check
        return f"error: {type(exc).__name__}"
    return "ok"


def check_redis() -> str:
    """ "ok", or "error: …" when Redis does not store and return a value (bounded by the door's short timeouts)."""
    try:
        cache.set("health:ping", "1", timeout=10)
        return "ok" if cache.get("health:ping") == "1" else "error: value not read back"
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"


def ping_redis() -> str:
    """ "ok", or "error: …" when Redis at `REDIS_URL` does not answer PING (within `lib.redis.TIMEOUT`)."""
    try:
        return "ok" if redis.sync_client().ping() else "error: no PONG"
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"


def check_vault(timeout: float | None = None) -> str:
    """ "ok", or "error: <reason>" when Vault is unreachable or sealed; `timeout` bounds the request."""
    try:
        vault.health(timeout=timeout)
    except vault.VaultError as exc:
        return f"error: {exc}"
    return "ok"


def check_all() -> dict[str, str]:
    """Return {"database": "ok"|error, "redis": …, "vault": …}; never raises, never includes secrets."""
    return {"database": check_database(), "redis": check_redis(), "vault": check_vault()}


def record_worker_check(results: dict[str, str]) -> None:
    """Remember when the Celery worker last ran the periodic health check and whether all was ok.

    Kept in the public schema's cache namespace whatever schema the worker is in, so /healthz finds it."""
    entry = {"at": time.time(), "ok": all(status == "ok" for status in results.values())}
    with schema_context(get_public_schema_name()):
        cache.set(WORKER_CHECK_KEY, entry, timeout=None)


def worker_status() -> dict[str, object]:
    """The worker's last health check for /healthz: time (ISO 8601, UTC), age in seconds and result.

    Never raises: no record yet (or Redis unreachable, which `check_all` reports) gives nulls."""
    try:
        with schema_context(get_public_schema_name()):
            entry = cache.get(WORKER_CHECK_KEY)
    except Exception:  # noqa: BLE001 - Redis trouble shows in check_all's "redis" entry
        entry = None
    if not isinstance(entry, dict) or not isinstance(entry.get("at"), float):
        return {"last_health_check": None, "age_seconds": None, "result": None}
    at = entry["at"]
    return {
        "last_health_check": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "age_seconds": max(0, round(time.time() - at)),
        "result": "ok" if entry.get("ok") else "degraded",
    }
