"""Project-wide HTTP middleware: request ids and per-tenant cookie scoping."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from audit import context
from authsec_site.lib.client_ip import drop_untrusted_forwarded_proto, request_ip

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def request_id_from(value: str | None) -> str:
    """Keep a well-formed incoming X-Request-ID (from a proxy), else make a new one."""
    return value if value and _REQUEST_ID.match(value) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Gives every request an id (echoed in ``X-Request-ID``) and binds id and client IP for audit events."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        drop_untrusted_forwarded_proto(request)
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        ctx = context.new_context(
            request_id=request_id,
            ip=request_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:255],
        )
        with context.bind(ctx):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class TenantCookiePathMiddleware:
    """Scopes the session and CSRF cookies to ``/t/<tenant>/`` (or the platform admin's path).

    Each schema has its own sessions; scoping the cookies keeps the browser from sending one tenant's
    session to another tenant, and lets a person stay logged in to two tenants at once.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return response
        path = settings.PUBLIC_COOKIE_PATH if tenant.schema_name == "public" else f"/t/{tenant.slug}/"
        for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
            if name in response.cookies:
                response.cookies[name]["path"] = path
        return response
