"""``/metrics``: the Prometheus exposition (`authsec_site.lib.metrics`), for a scraper holding ``METRICS_TOKEN``
and/or calling from ``METRICS_ALLOWED_IPS``; with neither configured it is off (404), never public.

Beside the counters every process keeps, a scrape reads the state that only the database knows: seconds since
each rotating service's last successful rotation, seconds until each enabled workload's SVID expires, and
whether Postgres, Redis and Vault answer (`authsec_site.lib.health.check_all`).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_tenants.utils import schema_context

from authsec_site.lib import metrics
from authsec_site.lib.client_ip import parse_networks, request_ip
from authsec_site.lib.health import check_all
from services.models import Service
from tenants.models import Tenant
from workloads.models import Workload


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """Why this request may not read the metrics (None: it may). Every configured check must pass."""
    token, allowed = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS
    if not token and not allowed:
        return JsonResponse(
            {
                "error": "not_found",
                "error_description": "Metrics are off on this server: set METRICS_TOKEN or METRICS_ALLOWED_IPS "
                "to let a scraper read /metrics (docs/observability.md).",
            },
            status=404,
        )
    if allowed:
        ip = request_ip(request)
        address = ipaddress.ip_address(ip) if ip else None
        if address is None or not any(address in network for network in parse_networks(allowed)):
            return JsonResponse(
                {"error": "forbidden", "error_description": "This address may not read the metrics."}, status=403
            )
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            response = JsonResponse(
                {"error": "invalid_token", "error_description": "A valid METRICS_TOKEN bearer token is required."},
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


def read_state() -> metrics.State:
    """What the database and the dependencies say now (every active tenant's schema is read)."""
    checks = check_all()
    state = metrics.State(dependencies={name: status == "ok" for name, status in checks.items()})
    if not state.dependencies.get("database"):
        return state
    now = timezone.now()
    for tenant in Tenant.objects.serving().only("slug", "schema_name"):
        with schema_context(tenant.schema_name):
            rotating = Service.objects.exclude(rotation_kind=Service.RotationKind.NONE).exclude(last_rotated_at=None)
            for name, rotated_at in rotating.values_list("name", "last_rotated_at"):
                state.rotation_ages.append((tenant.slug, name, (now - rotated_at).total_seconds()))
            issued = Workload.objects.filter(is_enabled=True).exclude(svid_not_after=None).exclude(svid_not_before=None)
            for name, not_before, not_after in issued.values_list("name", "svid_not_before", "svid_not_after"):
                left, lifetime = (not_after - now).total_seconds(), (not_after - not_before).total_seconds()
                state.svid_expiries.append((tenant.slug, name, left, lifetime))
    return state


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    body, content_type = metrics.exposition(read_state)
    return HttpResponse(body, content_type=content_type)
