"""Tenant resolution for ``/t/<slug>/…`` requests.

The tenant of a path is kept per process (every request asks for it) while the routing version token in Redis is
the one it was read under. Any change to a tenant or a domain drops this process's copies at once and moves the
token after commit, so every other process reads again on its next request: a deactivation takes effect
everywhere as it commits. Without Redis, every request reads the database.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.http import Http404
from django_tenants.middleware.subfolder import TenantSubfolderMiddleware
from django_tenants.utils import get_public_schema_name

from authsec_site.lib import coherence
from authsec_site.lib.ttlcache import TTLCache

ROUTING_VERSION_KEY = "tenants:routing-version"  # kept in the public schema's cache keys
ROUTING_TTL = 300.0  # seconds: an upper bound on a copy's life should a version announcement be lost
_routes: TTLCache[str, tuple[str, Any]] = TTLCache(4096, ROUTING_TTL)  # path segment → (version, active tenant)


def _routing_version() -> str | None:
    return coherence.version_or_none(ROUTING_VERSION_KEY, schema=get_public_schema_name(), what="Tenant routing")


def routing_changed(**kwargs: Any) -> None:
    """A tenant or domain changed: drop this process's copies now, and every process's after commit."""
    _routes.clear()

    coherence.move_after_commit(ROUTING_VERSION_KEY, schema=get_public_schema_name(), what="tenant routing")


def clear_routes() -> None:
    """Forget every copy of this process (tests roll back the rows a copy was read from)."""
    _routes.clear()


def connect() -> None:
    for model in ("tenants.Tenant", "tenants.Domain"):
        post_save.connect(routing_changed, sender=model, dispatch_uid=f"tenants-routing-save-{model}")
        post_delete.connect(routing_changed, sender=model, dispatch_uid=f"tenants-routing-delete-{model}")


class ActiveTenantSubfolderMiddleware(TenantSubfolderMiddleware):
    """django-tenants' subfolder routing that also treats an inactive tenant as unknown (404).

    The 404 is the same for "no such tenant" and "inactive tenant", so the answer reveals nothing.
    """

    def get_tenant(self, domain_model, hostname):  # type: ignore[no-untyped-def]
        version = _routing_version()
        hit = _routes.get(hostname) if version is not None else None
        if hit is not None and hit[0] == version:
            return copy.copy(hit[1])  # each request its own instance: nothing a request sets on it is shared
        domain = domain_model.objects.select_related("tenant").get(domain=hostname)
        if not domain.tenant.is_active:
            raise domain_model.DoesNotExist
        if version is not None:
            _routes.set(hostname, (version, copy.copy(domain.tenant)))
        return domain.tenant

    def no_tenant_found(self, request, hostname):  # type: ignore[no-untyped-def]
        raise Http404("No such tenant.")
