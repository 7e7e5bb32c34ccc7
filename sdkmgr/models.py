"""The public directory of SDK client ids (public schema): which tenant an AuthSec SDK client belongs to.

The published SDK sends only its client id, before any tenant is known; this table answers "which tenant"
and the tenant's own `rbac.Application.sdk_client_id` answers "which application". Rows are written by
`sdkmgr.signals` whenever an application is saved or deleted (never by hand).
"""

from __future__ import annotations

from django.db import models


class SdkClient(models.Model):
    """One application's SDK client id → its tenant (and, for display, the application's slug)."""

    client_id = models.UUIDField(primary_key=True, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="sdk_clients")
    application_slug = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__slug", "application_slug"]
        verbose_name = "SDK client"

    def __str__(self) -> str:
        return f"{self.client_id} ({self.tenant_id}/{self.application_slug})"
