"""Client registration policy per tenant: RFC 7591 dynamic registration (closed / held for approval / open)
and Client ID Metadata Documents (CIMD), fetched through the guarded
outbound door (`authsec_site.lib.outbound`)."""

from __future__ import annotations

from typing import Any

from oauth2_provider import cimd
from oauth2_provider.settings import oauth2_settings

from authsec_site.lib import outbound
from oauth.models import ProviderSettings


class TenantDCRPermission:
    """Registration is allowed unless the tenant closed it (the view also holds clients when required)."""

    def has_permission(self, request: Any) -> bool:
        return ProviderSettings.current().dynamic_registration != ProviderSettings.Registration.CLOSED


class TenantCIMDPermission:
    def has_permission(self, request: Any, client_id: str) -> bool:
        return ProviderSettings.current().allow_cimd


class TenantCIMDFetcher(cimd.SafeMetadataFetcher):
    """DOT's URL rules for a CIMD client_id (https, a path, no userinfo, fragment or dot segments), fetched
    through the project's one guarded door (`authsec_site.lib.outbound`: non-public addresses refused, the
    checked address connected to, no redirects, DOT's size and time limits). Returns (metadata, max_age)."""

    resolver: outbound.Resolver | None = None  # tests inject one; None is the system resolver

    def fetch(self, client_id: str) -> Any:
        cimd._validate_client_id_url(client_id)  # noqa: SLF001 - DOT's own CIMD URL rules, kept identical
        try:
            response = outbound.fetch(
                client_id,
                schemes=("https",),
                headers={"Accept": "application/json, application/*+json"},
                max_bytes=oauth2_settings.CIMD_MAX_DOCUMENT_SIZE,
                timeout=oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS,
                resolver=self.resolver,
            )
        except outbound.FetchError as exc:
            if exc.reason == "blocked_address":
                raise cimd.CIMDError(f"client_id host resolves to a non-public address: {exc.message}") from None
            raise cimd.CIMDError(f"could not fetch client_id document: {exc.message}") from None
        if response.status != 200:
            raise cimd.CIMDError(f"client_id document returned HTTP {response.status}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise cimd.CIMDError(f"client_id document is not JSON (Content-Type: {media_type[:80]!r})")
        try:
            data = response.json()
        except ValueError:
            raise cimd.CIMDError("client_id document is not valid JSON") from None
        if not isinstance(data, dict):
            raise cimd.CIMDError("client_id document must be a JSON object")
        return data, cimd._effective_max_age(response.headers.get("cache-control"))  # noqa: SLF001
