"""URLs outside any tenant (public schema): platform admin, health."""

from django.urls import path

from authsec_site import views
from authsec_site.admin_sites import platform_admin
from oauth import views as oauth_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", platform_admin.urls),
    # RFC 8414 path insertion for the issuer <base>/t/<slug>/oauth
    path(
        ".well-known/oauth-authorization-server/t/<slug:slug>/oauth",
        oauth_views.root_authorization_server_metadata,
        name="root-as-metadata",
    ),
]

handler404 = "authsec_site.views.not_found"
handler500 = "authsec_site.views.server_error"
