"""Tenant resolution for ``/t/<slug>/…`` requests."""

from __future__ import annotations

from django.http import Http404
from django_tenants.middleware.subfolder import TenantSubfolderMiddleware


class ActiveTenantSubfolderMiddleware(TenantSubfolderMiddleware):
    """django-tenants' subfolder routing that also treats an inactive tenant as unknown (404).

    The 404 is the same for "no such tenant" and "inactive tenant", so the answer reveals nothing.
    """

    def get_tenant(self, domain_model, hostname):  # type: ignore[no-untyped-def]
        domain = domain_model.objects.select_related("tenant").get(domain=hostname)
        if not domain.tenant.is_active:
            raise domain_model.DoesNotExist
        return domain.tenant

    def no_tenant_found(self, request, hostname):  # type: ignore[no-untyped-def]
        raise Http404("No such tenant.")
