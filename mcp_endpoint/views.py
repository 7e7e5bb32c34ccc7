"""RFC 9728 protected resource metadata of each hosted MCP endpoint (public URLConf, outside any tenant), and the
browser end of a login-tool login: its callback and confirmation page (tenant URLConf)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import httpx2
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods
from django_tenants.utils import tenant_context

from mcp_endpoint.bearer import resolve
from oauth import issuer
from rbac.models import Application, Scope
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@require_GET
def protected_resource_metadata(request: HttpRequest, slug: str, app: str) -> JsonResponse:
    """/.well-known/oauth-protected-resource/t/<slug>/mcp/<app>: names the tenant's issuer as the AS."""
    tenant = Tenant.objects.serving().filter(slug=slug).first()
    if tenant is None:
        return JsonResponse({"error": "not_found", "error_description": "No such MCP endpoint."}, status=404)
    with tenant_context(tenant):
        application = Application.objects.filter(slug=app, is_active=True).first()
        if application is None:
            return JsonResponse({"error": "not_found", "error_description": "No such MCP endpoint."}, status=404)
        body = {
            "resource": issuer.mcp_resource(application.slug, tenant),
            "authorization_servers": [issuer.issuer_for(tenant)],
            "bearer_methods_supported": ["header"],
            "scopes_supported": sorted(Scope.objects.values_list("name", flat=True)),
            "resource_name": application.name,
        }
    response = JsonResponse(body)
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=300"
    return response


def _page(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    context = {"title": title, "message": message, "ok": status == 200}
    return render(request, "mcp_endpoint/login_done.html", context, status=status)


@require_GET
def login_callback(request: HttpRequest) -> HttpResponse:
    """/t/<tenant>/mcp-login/callback: the end of the OAuth part of an `oauth_start` login (tenant URLConf).

    Looks the pending session up by `state`, exchanges the code at this tenant's own token endpoint with the
    server-held PKCE verifier and checks the token exactly like a bearer token. It never binds the session: it
    records the token's user (once per session) and redirects to the confirmation page, where that user, signed
    in, must type the user code and confirm (a remembered consent skips the consent page, never this one)."""
    from mcp_endpoint.login import CONFIRM_PATH, LOGIN_CLIENT_ID, callback_url
    from mcp_endpoint.models import AuthSession
    from mcp_endpoint.services import record_login_callback

    tenant = request.tenant  # type: ignore[attr-defined]
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    session = (
        AuthSession.objects.select_related("application").filter(state=state).first()
        if state and len(state) <= 64
        else None
    )
    if session is None:
        return _page(request, "Sign-in failed", "This sign-in link is unknown. Start again from your assistant.", 400)
    if session.current_status != AuthSession.Status.PENDING or session.callback_user_id is not None:
        return _page(
            request, "Sign-in failed", "This sign-in request has expired or was already used. Start again.", 400
        )
    if not code:
        error = request.GET.get("error", "no authorization code")[:100]
        return _page(
            request, "Sign-in failed", f"The sign-in did not complete ({error}). Start again from your assistant.", 400
        )
    try:
        with httpx2.Client(timeout=10, follow_redirects=False) as http:
            response = http.post(
                issuer.endpoint("token", tenant),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": callback_url(tenant),
                    "client_id": LOGIN_CLIENT_ID,
                    "code_verifier": session.code_verifier,
                },
            )
        token = response.json().get("access_token") if response.status_code == 200 else None
    except (httpx2.HTTPError, ValueError):
        logger.exception("MCP login: code exchange failed for %s", tenant.slug)
        token = None
    if not token:
        return _page(request, "Sign-in failed", "The authorization code could not be exchanged. Start again.", 400)
    checked = resolve(tenant.slug, session.application.slug, token)  # the same checks as a bearer token
    connection.set_tenant(tenant)
    if checked.principal is None:
        logger.warning("MCP login: token rejected for %s: %s", tenant.slug, checked.token_error)
        return _page(
            request, "Sign-in failed", "The issued token was not accepted for this endpoint. Start again.", 400
        )
    if not record_login_callback(session_id=session.pk, user_id=checked.principal.user_id):
        return _page(
            request, "Sign-in failed", "This sign-in request has expired or was already used. Start again.", 400
        )
    return redirect(f"{issuer.tenant_base(tenant)}/{CONFIRM_PATH}?{urlencode({'state': session.state})}")


def _confirm_context(request: HttpRequest, session: Any) -> dict[str, Any]:
    tenant = request.tenant  # type: ignore[attr-defined]
    return {
        "session": session,
        "application": session.application,
        "endpoint": issuer.mcp_resource(session.application.slug, tenant),
        "started_ip": session.started_ip or "unknown",
        "started_user_agent": session.started_user_agent or "unknown",
    }


@require_http_methods(["GET", "POST"])
@csrf_protect
def login_confirm(request: HttpRequest) -> HttpResponse:
    """/t/<tenant>/mcp-login/confirm?state=…: the confirmation page of a login, and its POST (CSRF-protected).

    Shown only to the signed-in user whose token the callback got, while the session is pending. It names the
    application, its MCP endpoint, when and from where (IP address, user agent) the login was started; the user
    types the code their assistant showed and confirms, or declines. Only the POST binds (services)."""
    from mcp_endpoint.login import audit_session
    from mcp_endpoint.models import AuthSession
    from mcp_endpoint.services import Confirmation, confirm_auth_session, decline_auth_session

    state = request.POST.get("state", "") if request.method == "POST" else request.GET.get("state", "")
    session = (
        AuthSession.objects.select_related("application").filter(state=state).first()
        if state and len(state) <= 64
        else None
    )
    if session is None:
        return _page(request, "Sign-in failed", "This sign-in link is unknown. Start again from your assistant.", 400)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path() if request.method == "GET" else "")
    if session.callback_user_id != request.user.pk:
        return _page(
            request, "Cannot confirm", "This sign-in request belongs to another account or did not reach you.", 403
        )
    if session.current_status != AuthSession.Status.PENDING:
        return _page(
            request, "Sign-in failed", "This sign-in request has expired or was already used. Start again.", 400
        )
    context = _confirm_context(request, session)
    if request.method == "GET":
        audit_session(request.user, "mcp.auth_session_confirmation_shown", session)
        return render(request, "mcp_endpoint/login_confirm.html", context)
    if request.POST.get("action") == "decline":
        outcome = decline_auth_session(actor=request.user, session_id=session.pk)
        if outcome is Confirmation.DECLINED:
            return _page(request, "Sign-in declined", "Nobody was signed in. You can close this window.", 200)
    else:
        outcome = confirm_auth_session(
            actor=request.user, session_id=session.pk, user_code=request.POST.get("user_code", "")[:64]
        )
        if outcome is Confirmation.CONFIRMED:
            return _page(request, "Signed in", "You are signed in. You can return to your assistant.", 200)
        if outcome is Confirmation.CODE_MISMATCH:
            error = "That is not the code of this sign-in. Type the code your assistant shows for it."
            return render(request, "mcp_endpoint/login_confirm.html", {**context, "error": error}, status=400)
        if outcome is Confirmation.DENIED:
            return _page(request, "Sign-in refused", "Too many wrong codes: this sign-in was ended. Start again.", 400)
    return _page(request, "Sign-in failed", "This sign-in request has expired or was already used. Start again.", 400)
