"""URLs outside any tenant (public schema): platform admin, health."""

from django.urls import include, path

from authsec_site import observability, views
from authsec_site.admin_sites import platform_admin
from mcp_endpoint import views as mcp_views
from oauth import views as oauth_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", observability.metrics_view, name="metrics"),  # docs/observability.md
    path("admin/", platform_admin.urls),
    path("sdkmgr/", include("sdkmgr.urls")),  # the published AuthSec SDK's API (docs/sdk.md)
    # RFC 8414 path insertion for the issuer <base>/t/<slug>/oauth
    path(
        ".well-known/oauth-authorization-server/t/<slug:slug>/oauth",
        oauth_views.root_authorization_server_metadata,
        name="root-as-metadata",
    ),
    # RFC 9728 metadata of the hosted MCP endpoint /t/<slug>/mcp/<app>
    path(
        ".well-known/oauth-protected-resource/t/<slug:slug>/mcp/<str:app>",
        mcp_views.protected_resource_metadata,
        name="mcp-resource-metadata",
    ),
]

handler404 = "authsec_site.views.not_found"
handler500 = "authsec_site.views.server_error"
