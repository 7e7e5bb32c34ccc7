"""The two admin sites: the platform admin (public schema, /admin/) and each tenant's dashboard.

Tenant dashboards use Django's default `admin.site` (it is served at /t/<tenant>/admin/); platform-only
models such as `Tenant` are registered on `platform_admin` alone, so no tenant dashboard lists them.
"""

from django.contrib import admin


class PlatformAdminSite(admin.AdminSite):
    site_header = "AuthSec Server — platform"
    site_title = "AuthSec platform"
    index_title = "Platform administration"


platform_admin = PlatformAdminSite(name="platform_admin")

admin.site.site_header = "AuthSec Server"
admin.site.site_title = "AuthSec dashboard"
admin.site.index_title = "Tenant administration"
# The dashboard home shows what waits for an admin (client registrations held for approval) above the apps.
admin.site.index_template = "admin/tenant_index.html"
# A tenant's "View site" would lead out of the tenant to the platform home page: hide it.
admin.site.site_url = None  # type: ignore[assignment]

# Both sites sign in through the throttled, audited login form: `accounts.apps.AccountsConfig.ready` sets it,
# so that every app's admin module can import the sites without importing accounts.
