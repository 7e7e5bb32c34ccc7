"""Celery tasks of the workloads app: find the SVIDs due for renewal, and renew one (retrying with backoff).

Both take primitive ids plus the tenant schema name and are idempotent: a renewal that finds the SVID fresh
(another run got there first) does nothing.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django_tenants.utils import schema_context

from tenants.models import Tenant

logger = logging.getLogger(__name__)


@shared_task(name="workloads.tasks.renew_due_svids")
def renew_due_svids(schema_name: str | None = None) -> dict[str, list[int]]:
    """Beat entry point: queue `renew_svid` for every enabled workload past its renewal point, without an SVID,
    whose files are missing, or whose last attempt failed."""
    from workloads.files import workload_files
    from workloads.models import Workload

    tenants = Tenant.objects.serving(schema_name)
    queued: dict[str, list[int]] = {}
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            due = [
                workload.pk
                for workload in Workload.objects.filter(is_enabled=True)
                if workload.is_renewal_due() or not workload_files(tenant.slug, workload.name).exist()
            ]
        for workload_id in due:
            renew_svid.delay(tenant.schema_name, workload_id)
        if due:
            queued[tenant.schema_name] = due
    if settings.SPIFFE_ENDPOINT_SOCKET and not schema_name:
        _sync_platform_identity()
    return queued


def _sync_platform_identity() -> None:
    """Keep ``_platform/`` current from the SPIRE agent even where no long-running watcher runs."""
    from workloads.spire import WorkloadApiError, sync_platform_svid

    try:
        logger.info("platform SVID: %s", sync_platform_svid(settings.SPIFFE_ENDPOINT_SOCKET))
    except WorkloadApiError as exc:
        logger.warning("platform SVID not refreshed: %s", exc)


@shared_task(bind=True, name="workloads.tasks.renew_svid", acks_late=True)
def renew_svid(self, schema_name: str, workload_id: int, force: bool = False) -> str:  # type: ignore[no-untyped-def]
    """Renew one workload's SVID when due (or always with `force`). A failure (Vault down…) leaves the old
    files in place, is audited, and is retried with exponential backoff up to SVID_MAX_RETRIES times."""
    from workloads.models import Workload
    from workloads.services import SvidIssueError, issue_svid

    with schema_context(schema_name):
        workload = Workload.objects.filter(pk=workload_id).first()
        if workload is None or not workload.is_enabled:
            return "skipped: no such enabled workload"
        try:
            result = issue_svid(workload, only_if_due=not force or self.request.retries > 0)
        except SvidIssueError as exc:
            countdown = min(settings.SVID_RETRY_BACKOFF * 2**self.request.retries, settings.SVID_RETRY_BACKOFF_MAX)
            logger.warning(
                "renewal of workload %s in %s failed (attempt %s), retrying in %ss: %s",
                workload_id,
                schema_name,
                self.request.retries + 1,
                countdown,
                exc,
            )
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.SVID_MAX_RETRIES) from None
    return f"renewed, serial {result.workload.svid_serial}" if result.issued else "fresh: nothing to do"
