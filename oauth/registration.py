"""Client registration policy per tenant: RFC 7591 dynamic registration (closed / held for approval / open)
and Client ID Metadata Documents (CIMD), fetched with django-oauth-toolkit's SSRF-hardened fetcher."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from oauth2_provider import cimd

from oauth.models import ProviderSettings


class TenantDCRPermission:
    """Registration is allowed unless the tenant closed it (the view also holds clients when required)."""

    def has_permission(self, request: Any) -> bool:
        return ProviderSettings.current().dynamic_registration != ProviderSettings.Registration.CLOSED


class TenantCIMDPermission:
    def has_permission(self, request: Any, client_id: str) -> bool:
        return ProviderSettings.current().allow_cimd


class TenantCIMDFetcher(cimd.SafeMetadataFetcher):
    """DOT's fetcher (https only; private, loopback and link-local targets refused; size, time and
    concurrency limits; caching). With OAUTH_CIMD_ALLOW_LOOPBACK (development only) a loopback host is
    accepted too; every other non-public address is still refused."""

    def fetch(self, client_id: str) -> Any:
        if settings.OAUTH_CIMD_ALLOW_LOOPBACK and _is_loopback_host(client_id):
            original = cimd._ip_is_public
            cimd._ip_is_public = lambda ip: original(ip) or ipaddress.ip_address(ip).is_loopback  # noqa: SLF001
            try:
                return super().fetch(client_id)
            finally:
                cimd._ip_is_public = original
        return super().fetch(client_id)


def _is_loopback_host(client_id: str) -> bool:
    host = urlparse(client_id).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1")
