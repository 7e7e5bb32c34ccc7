"""Small platform-level views: landing page, health, error pages."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from authsec_site.lib import outage
from authsec_site.lib.health import check_all, worker_status


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + dependencies: 200 when Postgres, Redis and Vault answer, else 503 naming the failing one.

    Also reports the Celery worker's last periodic health check (`worker`); that one is information for
    monitoring and never changes the status, so a web process is not reported down for a late worker."""
    results = check_all()
    healthy = all(status == "ok" for status in results.values())
    body = {"status": "ok" if healthy else "degraded", "checks": results, "worker": worker_status()}
    return JsonResponse(body, status=200 if healthy else 503)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler (called while the exception is being handled). A backing service that is down is
    a 503 with `Retry-After`: a JSON error (OAuth's shape) for API and OAuth clients, a page for browsers."""
    service = outage.unavailable(sys.exc_info()[1])
    if service is None:
        return render(request, "500.html", status=500)
    text = outage.message(service)
    if _wants_json(request):
        response: HttpResponse = JsonResponse(
            {"error": "temporarily_unavailable", "error_description": text}, status=503
        )
        response["Cache-Control"] = "no-store"
    else:
        response = render(request, "503.html", {"message": text}, status=503)
    response["Retry-After"] = str(outage.RETRY_AFTER)
    return response


def _wants_json(request: HttpRequest) -> bool:
    path = request.path
    if "/oauth/" in path and not path.rstrip("/").endswith("/authorize") or "/api/" in path:
        return True
    return "text/html" not in request.headers.get("Accept", "")
