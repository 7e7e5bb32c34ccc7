"""Tenant resolution for ``/t/<slug>/…`` requests.

The tenant of a path is kept per process (every request asks for it) while the routing version token in Redis is
the one it was read under. Any change to a tenant or a domain drops this process's copies at once and moves the
token after commit, so every other process reads again on its next request: a deactivation takes effect
everywhere as it commits. Without Redis, every request reads the database.

A tenant's URLConf (every pattern of ROOT_URLCONF under ``t/<slug>/``) is built once per slug and process, and
Django's URL caches are left alone. django-tenants builds a new URLConf module on every request and then clears
Django's URL caches, so every request of every tenant (and of the public schema) rebuilt the resolver and its
reverse tables from scratch: about 0.1 s for an admin page, most of the time of a dashboard request. The module
depends on the slug alone (the prefix is fixed in it, not read from the connection), so one per slug is exact.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any

from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.http import Http404, HttpRequest
from django.urls import set_urlconf
from django_tenants.middleware.subfolder import TenantSubfolderMiddleware
from django_tenants.urlresolvers import get_subfolder_urlconf
from django_tenants.utils import get_public_schema_name, get_subfolder_prefix, get_tenant_domain_model, get_tenant_model

from authsec_site.lib import coherence
from authsec_site.lib.ttlcache import TTLCache

ROUTING_VERSION_KEY = "tenants:routing-version"  # kept in the public schema's cache keys
ROUTING_TTL = 300.0  # seconds: an upper bound on a copy's life should a version announcement be lost
_routes: TTLCache[str, tuple[str, Any]] = TTLCache(4096, ROUTING_TTL)  # path segment → (version, active tenant)
URLCONFS_MAX = 4096
_urlconfs: dict[str, ModuleType] = {}  # slug of an active tenant → its URLConf module (and so its cached resolver)


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


def tenant_urlconf(tenant: Any) -> ModuleType:
    """The URLConf of ``tenant.domain_subfolder``, one module per slug and process.

    Django caches a resolver per URLConf object, so handing every request of a tenant the same module is what
    keeps its resolver (and reverse tables) built. Only slugs of active tenants get here; the map is bounded.
    """
    slug = tenant.domain_subfolder
    urlconf = _urlconfs.get(slug)
    if urlconf is None:
        if len(_urlconfs) >= URLCONFS_MAX:
            _urlconfs.clear()
        urlconf = _urlconfs[slug] = get_subfolder_urlconf(tenant)
    return urlconf


class ActiveTenantSubfolderMiddleware(TenantSubfolderMiddleware):
    """django-tenants' subfolder routing that also treats an inactive tenant as unknown (404), and keeps each
    tenant's URLConf (so Django's cached resolver) across requests.

    The 404 is the same for "no such tenant" and "inactive tenant", so the answer reveals nothing.
    """

    def process_request(self, request: HttpRequest) -> None:
        """django-tenants' ``process_request`` without its per-request ``clear_url_caches()``: that call
        existed for URLConfs that read the tenant's prefix from the connection; ours fix it in the module."""
        if hasattr(request, "tenant"):
            return None  # another middleware chose the tenant
        connection.set_schema_to_public()
        hostname = self.hostname_from_request(request)
        prefix = f"/{get_subfolder_prefix()}/"
        urlconf: ModuleType | None = None
        if request.path.startswith(prefix):
            slug = request.path[len(prefix) :].split("/")[0]
            domain_model = get_tenant_domain_model()
            try:
                tenant = self.get_tenant(domain_model=domain_model, hostname=slug)
            except domain_model.DoesNotExist:
                return self.no_tenant_found(request, slug)
            tenant.domain_subfolder = slug
            urlconf = tenant_urlconf(tenant)
        else:
            tenant_model = get_tenant_model()
            try:
                tenant = tenant_model.objects.get(schema_name=get_public_schema_name())
            except tenant_model.DoesNotExist as exc:
                raise Http404("Unable to find public tenant") from exc
        tenant.domain_url = hostname
        request.tenant = tenant
        connection.set_tenant(tenant)
        if urlconf is None:
            self.setup_url_routing(request, force_public=True)
        else:
            request.urlconf = urlconf  # type: ignore[attr-defined]
            set_urlconf(urlconf)
        return None

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
