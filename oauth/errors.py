"""Every error of the OAuth endpoints (``/t/<tenant>/oauth/…``) is OAuth JSON, never an HTML page.

Django answers some requests before or around the view: a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(`RequestDataTooBig`), too many form fields (`TooManyFieldsSent`), other `SuspiciousOperation`s, a path
that matches no URL, a method a view does not take, an unexpected exception. With DEBUG on or off those are
HTML pages; `OAuthJsonErrorsMiddleware` turns each into ``{"error", "error_description"}`` (RFC 6749 §5.2
codes where one fits) with no stack trace. The authorization endpoint is excepted: an error it cannot redirect
(unknown client, bad redirect URI) is shown to the person in the browser as a page, by design (RFC 6749
§4.1.2.1), and its other answers are redirects.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from authsec_site.lib import outage

logger = logging.getLogger(__name__)

# The JSON endpoints of a tenant's authorization server: everything under oauth/ except the browser-facing
# authorization endpoint.
OAUTH_API_PATH = re.compile(r"^/t/[^/]+/oauth/(?!authorize/?$)")

_BY_STATUS = {
    400: ("invalid_request", "The request is malformed."),
    401: ("invalid_client", "Client authentication failed."),
    403: ("access_denied", "The request was refused."),
    404: ("not_found", "No such OAuth endpoint."),
    405: ("invalid_request", "This method is not allowed here."),
    413: ("invalid_request", "The request body is too large."),
    415: ("invalid_request", "Unsupported content type."),
    429: ("slow_down", "Too many requests."),
    503: ("temporarily_unavailable", "The server is temporarily unavailable."),
}


def is_oauth_api(request: HttpRequest) -> bool:
    return OAUTH_API_PATH.match(request.path) is not None


def oauth_error(status: int, error: str, description: str) -> JsonResponse:
    """An RFC 6749 §5.2 error body, uncacheable."""
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def error_for_exception(exc: Exception) -> JsonResponse:
    """The OAuth answer to an exception Django would otherwise render as a page (the message never echoes
    the exception's text, which may quote the request)."""
    if isinstance(exc, RequestDataTooBig):
        return oauth_error(413, "invalid_request", "The request body is too large.")
    if isinstance(exc, TooManyFieldsSent):
        return oauth_error(400, "invalid_request", "The request has too many form fields.")
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        return oauth_error(400, "invalid_request", "The request is malformed.")
    if isinstance(exc, Http404):
        return oauth_error(404, *_BY_STATUS[404])
    if isinstance(exc, PermissionDenied):
        return oauth_error(403, "access_denied", "The request was refused.")
    service = outage.unavailable(exc)
    if service is not None:
        logger.error("OAuth endpoint: %s unavailable (%s)", service, exc)
        answer = oauth_error(503, "temporarily_unavailable", outage.message(service))
        answer["Retry-After"] = str(outage.RETRY_AFTER)
        return answer
    logger.error("OAuth endpoint failed", exc_info=exc)
    return oauth_error(500, "server_error", "The server could not answer; the error was logged.")


def as_json(response: HttpResponse) -> HttpResponse:
    """A non-JSON error response of an OAuth endpoint, rewritten as an OAuth error with the same status
    (an OAuth error body served under another content type, as oauthlib does on some paths, is kept)."""
    status = response.status_code
    if not response.streaming and response.content[:1] == b"{":
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            response["Content-Type"] = "application/json"
            return response
    default = ("server_error", "The server could not answer; the error was logged.")
    error, description = _BY_STATUS.get(status, default if status >= 500 else ("invalid_request", "Bad request."))
    answer = oauth_error(status, error, description)
    for header in ("Allow", "Retry-After", "WWW-Authenticate", "X-Request-ID"):
        if header in response:
            answer[header] = response[header]
    return answer


class OAuthJsonErrorsMiddleware:
    """OAuth endpoints: exceptions of the view and non-JSON error pages become OAuth JSON errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not is_oauth_api(request):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return as_json(response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return error_for_exception(exception) if is_oauth_api(request) else None
