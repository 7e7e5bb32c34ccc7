"""Django's admin app with the tenant dashboard's site class: `admin.site` is a `TenantAdminSite` (Django's documented
way to override the default site). Named in SHARED_APPS and TENANT_APPS instead of "django.contrib.admin"."""

from django.contrib.admin.apps import AdminConfig


class TenantAdminConfig(AdminConfig):
    default_site = "authsec_site.admin_sites.TenantAdminSite"
