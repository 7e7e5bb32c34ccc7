"""The Celery app (Redis broker). Tasks take primitive ids plus a tenant schema name and are idempotent."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

app = Celery("authsec", include=["authsec_site.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        float(settings.HEALTH_CHECK_INTERVAL), sender.signature("authsec_site.tasks.health_check"), name="health-check"
    )
    sender.add_periodic_task(3600.0, sender.signature("oauth.tasks.rotate_signing_keys"), name="oauth-key-rotation")
    retention = sender.signature("audit.tasks.apply_retention")
    sender.add_periodic_task(float(settings.AUDIT_RETENTION_INTERVAL), retention, name="audit-retention")
    verify = sender.signature("audit.tasks.verify_chains")
    sender.add_periodic_task(float(settings.AUDIT_VERIFY_INTERVAL), verify, name="audit-verify")
    stream = sender.signature("audit.tasks.stream_due_sinks")
    sender.add_periodic_task(float(settings.AUDIT_STREAM_INTERVAL), stream, name="audit-stream")
    rotation = sender.signature("services.tasks.rotate_due_services")
    sender.add_periodic_task(float(settings.SERVICES_ROTATION_CHECK_INTERVAL), rotation, name="services-rotation")
    cleanup = sender.signature("authsec_site.tasks.clear_expired")
    sender.add_periodic_task(float(settings.CLEANUP_INTERVAL), cleanup, name="expired-rows-cleanup")
    svids = sender.signature("workloads.tasks.renew_due_svids")
    sender.add_periodic_task(float(settings.SVID_RENEWAL_INTERVAL), svids, name="svid-renewal")
    expiry = sender.signature("approvals.tasks.expire_due")
    sender.add_periodic_task(float(settings.APPROVALS_EXPIRY_INTERVAL), expiry, name="approvals-expiry")
