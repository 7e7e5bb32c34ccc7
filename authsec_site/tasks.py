"""Platform-level Celery tasks."""

from __future__ import annotations

import logging

from celery import shared_task

from authsec_site.lib.health import check_all, record_worker_check

logger = logging.getLogger("authsec.health")


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
