"""The tenant's trust bundle for relying parties: ``/t/<tenant>/spiffe/bundle`` (public, like a JWKS)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from workloads.services import TrustBundleError, trust_bundle_jwks, trust_bundle_pem

logger = logging.getLogger(__name__)
FORMATS = ("pem", "jwks")
CACHE_SECONDS = 60


@require_GET
def trust_bundle(request: HttpRequest) -> HttpResponse:
    """The CA certificates of the tenant's trust domain: PEM (default) or, with ``?format=jwks``, the SPIFFE
    bundle format (a JWK Set with ``use: x509-svid`` keys and their certificates in ``x5c``)."""
    fmt = request.GET.get("format", "pem")
    if fmt not in FORMATS:
        return JsonResponse(
            {"error": "invalid_format", "error_description": f"format must be one of: {', '.join(FORMATS)}."},
            status=400,
        )
    tenant = request.tenant  # type: ignore[attr-defined]
    try:
        pem = trust_bundle_pem(tenant)
    except TrustBundleError as exc:
        logger.warning("trust bundle of %s unavailable: %s", tenant.slug, exc)
        response: HttpResponse = JsonResponse(
            {"error": "bundle_unavailable", "error_description": "The trust bundle is temporarily unavailable."},
            status=503,
        )
        response["Retry-After"] = "30"
        return response
    if fmt == "jwks":
        response = JsonResponse(trust_bundle_jwks(tenant, pem))
    else:
        response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response
