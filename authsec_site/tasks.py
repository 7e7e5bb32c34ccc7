"""Platform-level Celery tasks: the health check, and the cleanup of expired rows in every schema."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.cleanup import clear_expired_sessions
from authsec_site.lib.health import check_all, record_worker_check
from authsec_site.lib.schemas import queue_per_schema
from mcp_endpoint.cleanup import clear_expired_auth_sessions
from oauth.cleanup import clear_expired_tokens

logger = logging.getLogger("authsec.health")
logger_cleanup = logging.getLogger("authsec.cleanup")


@shared_task(name="authsec_site.tasks.health_check", ignore_result=False)
def health_check() -> dict[str, str]:
    """Periodic proof that beat → broker → worker → Postgres/Redis/Vault works; the result is logged and its
    time recorded for /healthz (`worker.last_health_check`)."""
    results = check_all()
    try:
        record_worker_check(results)
    except Exception:  # noqa: BLE001 - Redis is down: the "redis" entry of `results` says so, logged below
        logger.warning("health check: its time could not be recorded for /healthz")
    line = " ".join(f"{name}={status}" for name, status in results.items())
    if all(status == "ok" for status in results.values()):
        logger.info("health check ok: %s", line)
    else:
        logger.warning("health check degraded: %s", line)
    return results


@shared_task(name="authsec_site.tasks.clear_expired")
def clear_expired() -> list[str]:
    """Queue the cleanup of every schema (the platform's and each tenant's); returns the schema names."""
    return queue_per_schema(clear_expired_in_schema)


@shared_task(
    name="authsec_site.tasks.clear_expired_in_schema",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def clear_expired_in_schema(schema_name: str) -> dict[str, int]:
    """Delete one schema's expired rows: Django sessions everywhere; in a tenant also OAuth tokens and grants
    (`oauth.cleanup`) and MCP auth sessions (`mcp_endpoint.cleanup`). Only rows nothing accepts any more go, in
    batches; safe to run twice (the second run finds nothing). Logs the counts."""
    counts: dict[str, int] = {}
    with schema_context(schema_name):
        if schema_name != get_public_schema_name():
            counts.update(clear_expired_tokens())
            counts["mcp_auth_sessions"] = clear_expired_auth_sessions()
        counts["sessions"] = clear_expired_sessions()
    logger_cleanup.info("cleanup of %s: %s", schema_name, " ".join(f"{kind}={count}" for kind, count in counts.items()))
    return counts
