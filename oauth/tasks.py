"""Celery tasks of the OAuth provider."""

from __future__ import annotations

import logging

from celery import shared_task
from django_tenants.utils import schema_context

from tenants.models import Tenant

logger = logging.getLogger(__name__)


@shared_task(name="oauth.tasks.rotate_signing_keys", autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def rotate_signing_keys(schema_name: str | None = None) -> dict[str, str]:
    """Rotate each tenant's signing key when it is older than OAUTH_KEY_ROTATION_DAYS, and drop retired keys
    whose tokens have all expired. Idempotent: a second run inside the window changes nothing."""
    from oauth.keys import prune_expired, rotate_if_due

    tenants = Tenant.objects.serving(schema_name)
    results: dict[str, str] = {}
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            key = rotate_if_due()
            pruned = prune_expired()
        results[tenant.slug] = f"rotated to {key.kid}" if key else "current key still fresh"
        if pruned:
            results[tenant.slug] += f"; pruned {pruned}"
        logger.info("signing keys of %s: %s", tenant.slug, results[tenant.slug])
    return results
