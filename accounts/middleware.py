"""When the tenant requires a second factor of dashboard staff (`MfaSettings.require_for_staff`), staff reach the
dashboard, the audit pages and the management API (with a session) only after verifying one in this session:
the dashboard login, an upstream sign-in, any way in, ends on the step-up page (docs/mfa.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts import mfa

# URL namespaces that are the staff's; the login and logout pages stay open (one must be able to sign in and out).
STAFF_NAMESPACES = frozenset({"admin", "audit", "api"})
OPEN_VIEWS = frozenset({"login", "logout", "jsi18n"})
# A staff session stays verified for this long; then the dashboard asks again.
STAFF_VERIFIED_FOR = 12 * 3600


class StaffSecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or connection.schema_name == "public":
            return None
        if match.app_name not in STAFF_NAMESPACES or match.url_name in OPEN_VIEWS:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return None
        if match.app_name == "api" and request.META.get("HTTP_AUTHORIZATION"):
            return None  # a bearer token: the API's own checks; the factor guards browser sessions
        if not mfa.staff_must_verify(user) or mfa.verified_recently(request, within=STAFF_VERIFIED_FOR):
            return None
        if match.app_name == "api":
            return JsonResponse({"detail": "This tenant requires a verified second factor for staff."}, status=403)
        if not mfa.has_factor(user) and not mfa.recovery_codes_left(user):
            return redirect(reverse("accounts-security") + "?" + _next(request))
        return redirect(mfa.step_up_url(request, request.get_full_path()))


def _next(request: HttpRequest) -> str:
    return urlencode({"next": request.get_full_path()})
