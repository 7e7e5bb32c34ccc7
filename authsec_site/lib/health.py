"""Reachability checks of the services AuthSec depends on (Postgres, Redis, Vault)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection

from authsec_site.lib import vault


def check_all() -> dict[str, str]:
    """Return {"database": "ok"|error, "redis": …, "vault": …}; never raises, never includes secrets."""
    results: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        results["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't crash the check
        results["database"] = f"error: {type(exc).__name__}"
    try:
        cache.set("health:ping", "1", timeout=10)
        results["redis"] = "ok" if cache.get("health:ping") == "1" else "error: value not read back"
    except Exception as exc:  # noqa: BLE001
        results["redis"] = f"error: {type(exc).__name__}"
    try:
        vault.health()
        results["vault"] = "ok"
    except vault.VaultError as exc:
        results["vault"] = f"error: {exc}"
    return results
