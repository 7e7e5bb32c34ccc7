"""RFC 9728 protected resource metadata of each hosted MCP endpoint (public URLConf, outside any tenant)."""

from __future__ import annotations

import logging

import httpx2
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_tenants.utils import tenant_context

from mcp_endpoint.auth import resolve
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


@require_GET
def login_callback(request: HttpRequest) -> HttpResponse:
    """/t/<tenant>/mcp-login/callback: the end of an `oauth_start` login (tenant URLConf).

    Looks the auth session up by `state`, exchanges the code at this tenant's own token endpoint with the
    server-held PKCE verifier, checks the token exactly like a bearer token and marks the session
    authenticated."""
    from mcp_endpoint.login import LOGIN_CLIENT_ID, callback_url, mark_authenticated
    from mcp_endpoint.models import AuthSession

    tenant = request.tenant  # type: ignore[attr-defined]
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    session = (
        AuthSession.objects.select_related("application").filter(state=state).first()
        if state and len(state) <= 64
        else None
    )

    def page(title: str, message: str, status: int) -> HttpResponse:
        context = {"title": title, "message": message, "ok": status == 200}
        return render(request, "mcp_endpoint/login_done.html", context, status=status)

    if session is None:
        return page("Sign-in failed", "This sign-in link is unknown. Start again from your assistant.", 400)
    if session.current_status != AuthSession.Status.PENDING:
        return page("Sign-in failed", "This sign-in request has expired or was already used. Start again.", 400)
    if not code:
        error = request.GET.get("error", "no authorization code")
        return page("Sign-in failed", f"The sign-in did not complete ({error}). Start again from your assistant.", 400)
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
        return page("Sign-in failed", "The authorization code could not be exchanged. Start again.", 400)
    checked = resolve(tenant.slug, session.application.slug, token)  # the same checks as a bearer token
    connection.set_tenant(tenant)
    if checked.principal is None:
        logger.warning("MCP login: token rejected for %s: %s", tenant.slug, checked.token_error)
        return page("Sign-in failed", "The issued token was not accepted for this endpoint. Start again.", 400)
    mark_authenticated(session, checked.principal.user_id, via="callback")
    return page("Signed in", "You are signed in. You can return to your assistant.", 200)
