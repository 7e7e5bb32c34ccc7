"""URLs of a tenant, served under /t/<tenant>/ by django-tenants' subfolder routing."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="tenant-home"),
    path("admin/", admin.site.urls),
    path("api/", include("rbac.api.urls")),
]

handler404 = "authsec_site.views.not_found"
handler500 = "authsec_site.views.server_error"
