"""Celery tasks of services: find services due for rotation (beat) and rotate one with retries and backoff."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django_tenants.utils import schema_context

from audit.recorder import Actor
from tenants.models import Tenant

logger = logging.getLogger(__name__)
TASK_ACTOR = Actor("system", "", "celery:services.rotate")


@shared_task(name="services.tasks.rotate_due_services")
def rotate_due_services(schema_name: str | None = None) -> dict[str, list[int]]:
    """Queue a rotation for every service whose policy says it is due, in every active tenant (or one)."""
    from services.models import Service

    tenants = Tenant.objects.serving(schema_name)
    queued: dict[str, list[int]] = {}
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            due = [service.pk for service in Service.objects.due_for_rotation()]
            leased = Service.objects.filter(rotation_kind=Service.RotationKind.DATABASE, vault_version__gt=0)
            renew = list(leased.exclude(pk__in=due).values_list("pk", flat=True))
        for service_id in due:
            rotate_service.delay(tenant.schema_name, service_id)
        for service_id in renew:
            renew_database_lease.delay(tenant.schema_name, service_id)
        if due:
            queued[tenant.slug] = due
            logger.info("services due for rotation in %s: %s", tenant.slug, due)
    return queued


@shared_task(name="services.tasks.rotate_service", bind=True, acks_late=True)
def rotate_service(self, schema_name: str, service_id: int, force: bool = False) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Rotate one service (idempotent inside its policy window unless `force`). A failure leaves the current
    version, is recorded and audited by the service function, and is retried with exponential backoff."""
    from services import services

    with schema_context(schema_name):
        try:
            result = services.rotate_service(actor=TASK_ACTOR, service_id=service_id, force=force)
        except services.RotationError as exc:
            if self.request.retries >= settings.SERVICES_ROTATION_MAX_RETRIES:
                logger.error("Rotation of service %s in %s gave up: %s", service_id, schema_name, exc)
                return {"service_id": service_id, "rotated": False, "error": str(exc)}
            countdown = min(settings.SERVICES_ROTATION_RETRY_BACKOFF * 2**self.request.retries, 3600)
            raise self.retry(countdown=countdown, exc=exc) from None
    logger.info("rotation of service %s in %s: %s (v%s)", service_id, schema_name, result.message, result.version)
    return {"service_id": service_id, "rotated": result.rotated, "version": result.version}


@shared_task(name="services.tasks.renew_database_lease", bind=True, acks_late=True)
def renew_database_lease(self, schema_name: str, service_id: int) -> str:  # type: ignore[no-untyped-def]
    """Renew a database service's lease, or lease new credentials when it cannot be renewed long enough."""
    from services import services

    with schema_context(schema_name):
        try:
            outcome = services.renew_or_reissue_lease(actor=TASK_ACTOR, service_id=service_id)
        except services.RotationError as exc:
            if self.request.retries >= settings.SERVICES_ROTATION_MAX_RETRIES:
                logger.error("Lease of service %s in %s could not be kept: %s", service_id, schema_name, exc)
                return "failed"
            countdown = min(settings.SERVICES_ROTATION_RETRY_BACKOFF * 2**self.request.retries, 3600)
            raise self.retry(countdown=countdown, exc=exc) from None
    logger.info("lease of service %s in %s: %s", service_id, schema_name, outcome)
    return outcome
