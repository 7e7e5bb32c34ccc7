"""URLs outside any tenant (public schema): platform admin, health."""

from django.urls import path

from authsec_site import views
from authsec_site.admin_sites import platform_admin

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", platform_admin.urls),
]

handler404 = "authsec_site.views.not_found"
handler500 = "authsec_site.views.server_error"
