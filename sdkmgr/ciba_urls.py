"""The published SDK's CIBA paths (`authsec_sdk.ciba.CIBAClient`), under the tenant's issuer ``/t/<tenant>/oauth/``:
the SDK's base URL is the issuer, and it appends these paths (exact: no trailing slash, no redirect).
The MFA status look-up has two spellings: the SDK drops ``authsec/`` when its base URL is on localhost."""

from django.urls import path, re_path

from sdkmgr import ciba

WORKSPACE = "authsec/uflow/auth/workspace/"
urlpatterns = [
    path(f"{WORKSPACE}ciba/initiate", ciba.initiate, name="ciba-initiate"),
    path(f"{WORKSPACE}ciba/token", ciba.token, name="ciba-token"),
    path(f"{WORKSPACE}ciba/respond", ciba.respond, name="ciba-respond"),
    path(f"{WORKSPACE}ciba/requests", ciba.pending_requests, name="ciba-requests"),
    path(f"{WORKSPACE}ciba/register-device", ciba.register_device, name="ciba-register-device"),
    path(f"{WORKSPACE}totp/login", ciba.totp_login, name="ciba-totp-login"),
    path("authsec/webauthn/enduser/mfa/loginStatus", ciba.mfa_status_by_client, name="ciba-mfa-status-by-client"),
    path("authsec/webauthn/mfa/loginStatus", ciba.mfa_status, name="ciba-mfa-status"),
    path("webauthn/mfa/loginStatus", ciba.mfa_status, name="ciba-mfa-status-local"),
    path("authsec/uflow/user/login", ciba.password_login, name="ciba-password-login"),
    # The SDK's admin flow (a CIBAClient without client_id): a clear error, never a 404.
    re_path(r"^authsec/uflow/auth/(?P<rest>ciba/[a-z-]+|totp/login)$", ciba.admin_flow, name="ciba-admin-flow"),
]
