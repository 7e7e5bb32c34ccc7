"""One issuer per tenant: ``<AUTHSEC_PUBLIC_URL>/t/<slug>/oauth``, independent of the request's Host.

django-oauth-toolkit derives its issuer from `oauth2_settings` (a global `OIDC_ISS_ENDPOINT`, or the request
URL). Its docs require a per-issuer value for path-based multi-tenancy, so `install()` points the three
issuer hooks of the settings object at the current tenant (`connection.tenant`, set per request by
django-tenants).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connection
from oauth2_provider.settings import oauth2_settings


def tenant_base(tenant: Any = None) -> str:
    tenant = tenant or getattr(connection, "tenant", None)
    if tenant is None or getattr(tenant, "schema_name", "public") == "public":
        raise ImproperlyConfigured("The OAuth issuer is only defined inside a tenant.")
    return f"{settings.AUTHSEC_PUBLIC_URL}/t/{tenant.slug}"


def issuer_for(tenant: Any = None) -> str:
    return f"{tenant_base(tenant)}/oauth"


def endpoint(name: str, tenant: Any = None) -> str:
    return f"{issuer_for(tenant)}/{name}"


def mcp_resource(app_slug: str, tenant: Any = None) -> str:
    """The canonical URL (RFC 8707 resource, JWT `aud`) of an application's MCP endpoint."""
    return f"{tenant_base(tenant)}/mcp/{app_slug}"


def _issuer(request: Any = None, *args: Any, **kwargs: Any) -> str:
    return issuer_for()


def install(**kwargs: Any) -> None:
    for hook in ("oidc_issuer", "oauth2_metadata_issuer", "oauth2_authorization_server_issuer"):
        setattr(oauth2_settings, hook, _issuer)


def _reinstall(setting: str, **kwargs: Any) -> None:
    if setting == "OAUTH2_PROVIDER":
        install()


setting_changed.connect(_reinstall)
