"""Browser endpoints of upstream sign-in: /t/<tenant>/accounts/upstream/<slug>/start and …/callback.

Thin: oauth.upstream does the protocol work; these views audit failures, sign the user in and render a clean
error page (never a stack trace) for anything that goes wrong.
"""

from __future__ import annotations

import logging

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

import audit
from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import metrics
from oauth import upstream
from oauth.models import UpstreamProvider
from oauth.upstream import UpstreamError

logger = logging.getLogger(__name__)


def _error_page(request: HttpRequest, provider: UpstreamProvider | None, message: str, status: int) -> HttpResponse:
    return render(request, "oauth/upstream_error.html", {"provider": provider, "message": message}, status=status)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _error_page(request, None, "This sign-in option does not exist or has been turned off.", 404)


def _record_failure(request: HttpRequest, provider: UpstreamProvider, error: UpstreamError) -> None:
    metrics.login(False)
    audit.record(
        Actor(AuditEvent.ActorType.ANONYMOUS, "", error.email or "anonymous"),
        "auth.login_failed",
        outcome=AuditEvent.Outcome.FAILURE,
        target=provider,
        request=request,
        data={
            "via": f"upstream:{provider.slug}",
            "reason": error.reason,
            "detail": error.detail,
            "email": error.email,
        },
    )


def _failed(request: HttpRequest, provider: UpstreamProvider, error: UpstreamError) -> HttpResponse:
    logger.info("Upstream sign-in with %s failed: %s (%s)", provider.slug, error.reason, error.detail)
    _record_failure(request, provider, error)
    return _error_page(request, provider, error.message, error.status)


def _unexpected(provider: UpstreamProvider) -> UpstreamError:
    return UpstreamError(
        f"Sign-in with {provider.name} failed unexpectedly. Try again later.", reason="internal_error", status=500
    )


@never_cache
@require_GET
def upstream_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Send the browser to the upstream provider, remembering state, nonce, PKCE verifier and `next`."""
    provider = UpstreamProvider.objects.enabled().filter(slug=slug).first()
    if provider is None:
        return _not_found(request)
    next_url = upstream.safe_next(request, request.GET.get("next"))
    try:
        return HttpResponseRedirect(upstream.begin(request, provider, next_url))
    except UpstreamError as exc:
        return _failed(request, provider, exc)
    except Exception:
        logger.exception("Upstream sign-in with %s could not start", provider.slug)
        return _failed(request, provider, _unexpected(provider))


@never_cache
@require_GET
def upstream_callback(request: HttpRequest, slug: str) -> HttpResponse:
    """The upstream's answer: verified by oauth.upstream, then the tenant user is signed in and sent to `next`."""
    provider = UpstreamProvider.objects.enabled().filter(slug=slug).first()
    if provider is None:
        return _not_found(request)
    try:
        result = upstream.complete(request, provider, request.GET.dict())
    except UpstreamError as exc:
        return _failed(request, provider, exc)
    except Exception:
        logger.exception("Upstream sign-in with %s failed", provider.slug)
        return _failed(request, provider, _unexpected(provider))
    # The `auth.login_succeeded` event (audit.receivers) names how the user signed in.
    request.auth_via = f"upstream:{provider.slug}"  # type: ignore[attr-defined]
    login(request, result.user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(result.next_url)
