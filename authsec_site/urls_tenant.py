"""URLs of a tenant, served under /t/<tenant>/ by django-tenants' subfolder routing."""

from django.contrib import admin
from django.urls import include, path

from accounts import mfa_views
from accounts import views as accounts_views
from authsec_site import account, dashboard_tokens
from mcp_endpoint import views as mcp_views
from oauth import upstream_views

urlpatterns = [
    path("", accounts_views.tenant_home, name="tenant-home"),
    # The dashboard's Tokens & sessions page spans oauth and mcp_endpoint: wired here, inside the dashboard's login.
    path("admin/tokens/", admin.site.admin_view(dashboard_tokens.tokens), name="dashboard-tokens"),
    path(
        "admin/tokens/<slug:kind>/<str:pk>/revoke/",
        admin.site.admin_view(dashboard_tokens.revoke),
        name="dashboard-tokens-revoke",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("audit/", include("audit.urls")),
    path("approvals/", include("approvals.urls")),
    path("spiffe/", include("workloads.urls")),
    path("oauth/", include("sdkmgr.ciba_urls")),  # the published SDK's CIBAClient under the issuer (docs/ciba.md)
    path("oauth/", include("oauth.urls")),
    path("accounts/login/", accounts_views.LoginView.as_view(), name="accounts-login"),
    path("accounts/logout/", accounts_views.LogoutView.as_view(), name="accounts-logout"),
    path("accounts/upstream/<slug:slug>/start", upstream_views.upstream_start, name="accounts-upstream-start"),
    path("account/", account.account, name="accounts-account"),
    path("account/revoke/<slug:kind>/<str:pk>", account.revoke, name="accounts-account-revoke"),
    path("account/security/", mfa_views.security, name="accounts-security"),
    path("account/verify/", mfa_views.verify, name="accounts-mfa-verify"),
    path(
        "account/passkeys/register/options",
        mfa_views.passkey_register_options,
        name="accounts-passkey-register-options",
    ),
    path("account/passkeys/register", mfa_views.passkey_register, name="accounts-passkey-register"),
    path("account/passkeys/verify/options", mfa_views.passkey_auth_options, name="accounts-passkey-auth-options"),
    path("account/passkeys/verify", mfa_views.passkey_auth, name="accounts-passkey-auth"),
    path("mcp-login/callback", mcp_views.login_callback, name="mcp-login-callback"),
    path("mcp-login/confirm", mcp_views.login_confirm, name="mcp-login-confirm"),
    path("accounts/upstream/<slug:slug>/callback", upstream_views.upstream_callback, name="accounts-upstream-callback"),
]

handler404 = "authsec_site.views.not_found"
handler500 = "authsec_site.views.server_error"
