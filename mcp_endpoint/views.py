"""RFC 9728 protected resource metadata of each hosted MCP endpoint (public URLConf, outside any tenant)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from django_tenants.utils import tenant_context

from oauth import issuer
from rbac.models import Application, Scope
from tenants.models import Tenant


@require_GET
def protected_resource_metadata(request: HttpRequest, slug: str, app: str) -> JsonResponse:
    """/.well-known/oauth-protected-resource/t/<slug>/mcp/<app>: names the tenant's issuer as the AS."""
    tenant = Tenant.objects.filter(slug=slug, is_active=True).exclude(schema_name="public").first()
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
