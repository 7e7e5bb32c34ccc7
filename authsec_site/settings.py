"""AuthSec Server settings: the one settings module, read from the environment.

Every variable is documented with its default in `.env.example`. With DEBUG off, start-up stops with a
clear message when a required value is missing, instead of running on a development default.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from authsec_site.lib.client_ip import parse_networks
from authsec_site.lib.env import env_bool, env_int, env_list, env_str, is_set

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"

DEBUG = env_bool("DEBUG", False)

# --- Required values -----------------------------------------------------------------------------------
# In development (DEBUG on) these fall back to local defaults; in production each must be set.
_missing = [
    name for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "VAULT_ADDR", "AUTHSEC_PUBLIC_URL") if not is_set(name)
]
if not DEBUG and not (is_set("VAULT_TOKEN") or (is_set("VAULT_ROLE_ID") and is_set("VAULT_SECRET_ID"))):
    _missing.append("VAULT_TOKEN (or VAULT_ROLE_ID + VAULT_SECRET_ID)")
if not DEBUG and _missing:
    raise ImproperlyConfigured(
        "AuthSec Server cannot start with DEBUG off: missing required setting(s): "
        + ", ".join(_missing)
        + ". Set them in the environment (see .env.example)."
    )

SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-only-used-with-DEBUG-on")

AUTHSEC_PUBLIC_URL = env_str("AUTHSEC_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(AUTHSEC_PUBLIC_URL)
if _public.scheme not in ("http", "https") or not _public.hostname:
    raise ImproperlyConfigured(f"AUTHSEC_PUBLIC_URL must be an absolute http(s) URL, got {AUTHSEC_PUBLIC_URL!r}")
if not DEBUG and _public.scheme != "https" and _public.hostname not in ("127.0.0.1", "localhost", "::1"):
    raise ImproperlyConfigured("AUTHSEC_PUBLIC_URL must use https when DEBUG is off (except on loopback)")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [_public.hostname, "127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [f"{_public.scheme}://{_public.netloc}"])

# --- Applications ----------------------------------------------------------------------------------------
# Shared apps live in the public schema; tenant apps get their own tables in every tenant schema.
# contrib.auth, sessions, admin and accounts are in both, so each schema has its own users and sessions.
SHARED_APPS = [
    # `tenants` comes first so its create_tenant command overrides django-tenants' generic one.
    "tenants",
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "authsec_site.admin_config.TenantAdminConfig",  # django.contrib.admin; admin.site groups by task
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "accounts",
    "django_otp",  # its tables in the public schema too: accounts' second-factor queries work in any schema
    "django_otp.plugins.otp_totp",
    "audit",
    "sdkmgr",  # public directory of AuthSec SDK client ids (client id -> tenant)
    "authsec_site",  # the wiring above every app: its management commands (seed_demo)
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "authsec_site.admin_config.TenantAdminConfig",  # django.contrib.admin; admin.site groups by task
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "django_otp",  # second factors: TOTP devices (accounts.mfa, docs/mfa.md)
    "django_otp.plugins.otp_totp",
    "audit",
    "rbac",
    "oauth",
    "oauth2_provider",
    "services",
    "mcp_endpoint",
    "workloads",
    "approvals",  # human approval of sensitive tool calls and CIBA requests
    "api",  # the REST management API (no models)
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_SUBFOLDER_PREFIX = "t"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "authsec_site.urls_public"
ROOT_URLCONF = "authsec_site.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Send SET search_path only when the schema changes, not on every cursor (one query less per fetch).
TENANT_LIMIT_SET_CALLS = True

AUTH_USER_MODEL = "accounts.User"
# ModelBackend signs users in (and gives superusers every permission); dashboard roles add theirs (accounts.roles).
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "accounts.backends.DashboardRoleBackend"]

MIDDLEWARE = [
    "authsec_site.middleware.RequestContextMiddleware",
    "oauth.errors.OAuthJsonErrorsMiddleware",  # OAuth endpoints: every error is OAuth JSON, DEBUG on or off
    "tenants.middleware.ActiveTenantSubfolderMiddleware",
    "authsec_site.middleware.TenantCookiePathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.StaffSecondFactorMiddleware",  # the tenant may require a second factor of staff
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.tenant",
                "approvals.context.pending_approvals",  # the dashboard home's count of requests to answer
            ],
        },
    },
]

ASGI_APPLICATION = "authsec_site.asgi.application"

# --- Database ----------------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/authsec"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
DATABASES["default"]["ENGINE"] = "authsec_site.lib.pg_backend"  # django-tenants' backend, see its docstring
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis) -------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "authsec_site.lib.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Cache keys are prefixed with the schema, so tenants never read each other's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "authsec"),
        # The cache shares the process's one Redis connection pool (`authsec_site.lib.redis`).
        "OPTIONS": {"pool_class": "authsec_site.lib.redis.SharedPool"},
    }
}

# --- Passwords, sessions, cookies ---------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",  # user passwords
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "authsec_site.hashers.ClientSecretHasher",  # OAuth client secrets only (OAUTH2_PROVIDER below)
]
# Test harness only (docs/running.md): servers the suite starts hash and verify user passwords with a fast
# hasher, as the pytest process does. Accepted only on a pytest-django test database (name `test_…`);
# anywhere else start-up stops, so it can never weaken a real deployment's password storage.
if env_bool("AUTHSEC_TEST_FAST_PASSWORD_HASHER", False):
    if not str(DATABASES["default"]["NAME"]).startswith("test_"):
        raise ImproperlyConfigured(
            "AUTHSEC_TEST_FAST_PASSWORD_HASHER is for the test suite only (its database names start with test_)."
        )
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = _public.scheme == "https"
CSRF_COOKIE_SECURE = _public.scheme == "https"
CSRF_COOKIE_HTTPONLY = True
# Cookies of the platform admin are scoped to this path, those of a tenant to /t/<tenant>/
# (TenantCookiePathMiddleware), so a login in one tenant is never sent to another.
PUBLIC_COOKIE_PATH = "/admin/"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO") else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
# Reverse proxies (addresses or CIDRs) whose forwarding header names the client (authsec_site.lib.client_ip);
# empty: the socket peer is the client and forwarding headers are ignored. Uvicorn runs --no-proxy-headers.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# The header those proxies write: "X-Forwarded-For" or "Forwarded" (RFC 7239). Only one is read, so a client
# cannot slip in the other one past a proxy that only appends to its own.
FORWARDED_HEADER = env_str("FORWARDED_HEADER", "X-Forwarded-For")
if FORWARDED_HEADER.lower() not in ("x-forwarded-for", "forwarded"):
    raise ImproperlyConfigured(f'FORWARDED_HEADER must be "X-Forwarded-For" or "Forwarded", not {FORWARDED_HEADER!r}.')
try:
    parse_networks(TRUSTED_PROXIES)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# X-Forwarded-Proto is read only from TRUSTED_PROXIES (authsec_site.lib.client_ip.drop_untrusted_forwarded_proto).
if SECURE_PROXY_SSL_HEADER and not TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        "TRUST_X_FORWARDED_PROTO=1 needs TRUSTED_PROXIES (the proxies whose X-Forwarded-Proto is believed)."
    )
# Every JSON request body (authsec_site.lib.jsonbody): bytes, nesting depth, object keys in all.
JSON_MAX_BYTES = env_int("JSON_MAX_BYTES", 1024 * 1024, minimum=1024)
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 64, minimum=4)
JSON_MAX_KEYS = env_int("JSON_MAX_KEYS", 10000, minimum=16)
# Form bodies (the token, revoke and introspect endpoints, the sign-in form): Django's own limits, whose
# errors the OAuth endpoints answer as OAuth JSON (oauth.errors).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2621440, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000, minimum=16)

# --- Internationalisation, static files -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(LOCAL_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Vault (OpenBao) --------------------------------------------------------------------------------------
VAULT_ADDR = env_str("VAULT_ADDR", "http://127.0.0.1:8200")
VAULT_TOKEN = env_str("VAULT_TOKEN")
VAULT_ROLE_ID = env_str("VAULT_ROLE_ID")
VAULT_SECRET_ID = env_str("VAULT_SECRET_ID")
VAULT_APPROLE_MOUNT = env_str("VAULT_APPROLE_MOUNT", "approle")
VAULT_KV_MOUNT = env_str("VAULT_KV_MOUNT", "secret")
VAULT_KV_PREFIX = env_str("VAULT_KV_PREFIX", "authsec")
VAULT_TIMEOUT = env_int("VAULT_TIMEOUT", 5, minimum=1)
VAULT_CACERT = env_str("VAULT_CACERT")
# Lifetime of a tenant's own Vault token (AppRole login); the app logs in again before it runs out.
VAULT_TENANT_TOKEN_TTL = env_int("VAULT_TENANT_TOKEN_TTL", 900, minimum=60)

# --- Celery -------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(LOCAL_DIR / "celerybeat-schedule"))
HEALTH_CHECK_INTERVAL = env_int("HEALTH_CHECK_INTERVAL", 60, minimum=5)
# Cleanup of expired rows (authsec_site.tasks.clear_expired, docs/celery.md): seconds between runs, and rows deleted
# per statement (each batch its own transaction; also DOT's CLEAR_EXPIRED_TOKENS_BATCH_SIZE).
CLEANUP_INTERVAL = env_int("CLEANUP_INTERVAL", 3600, minimum=60)
CLEANUP_BATCH_SIZE = env_int("CLEANUP_BATCH_SIZE", 1000, minimum=1)
# Approvals (docs/approvals.md): seconds between runs of the expiry of unanswered requests.
APPROVALS_EXPIRY_INTERVAL = env_int("APPROVALS_EXPIRY_INTERVAL", 60, minimum=5)
# How long a tools/call waits for the decision: after a handshake-era client opened the approval page
# (elicitation/create in URL mode), and per retry of a 2026-07-28 client (input-required rounds).
APPROVALS_CALL_WAIT = env_int("APPROVALS_CALL_WAIT", 120, minimum=0)
APPROVALS_RETRY_WAIT = env_int("APPROVALS_RETRY_WAIT", 10, minimum=0)
# Email (approval notifications): Django's backend; `make run` writes messages as files under .local/mail.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(LOCAL_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "authsec@localhost")

# --- OAuth 2.1 / OIDC provider (django-oauth-toolkit; one issuer per tenant) ---------------------------------
# The issuer of tenant <slug> is <AUTHSEC_PUBLIC_URL>/t/<slug>/oauth (oauth.issuer); signing keys live in Vault.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.Client"
OAUTH_ACCESS_TOKEN_SECONDS = env_int("OAUTH_ACCESS_TOKEN_SECONDS", 900, minimum=60)
OAUTH_ID_TOKEN_SECONDS = env_int("OAUTH_ID_TOKEN_SECONDS", 900, minimum=60)
OAUTH_REFRESH_TOKEN_SECONDS = env_int("OAUTH_REFRESH_TOKEN_SECONDS", 30 * 24 * 3600, minimum=300)
OAUTH_KEY_ROTATION_DAYS = env_int("OAUTH_KEY_ROTATION_DAYS", 30, minimum=1)
# Redirect URIs follow OAuth 2.1 / RFC 8252 (oauth.redirect_uris): https, or http to loopback only. Development
# only: also accept plain http to any host (refused at start-up with DEBUG off).
OAUTH_ALLOW_INSECURE_REDIRECT_URIS = env_bool("OAUTH_ALLOW_INSECURE_REDIRECT_URIS", False)
if OAUTH_ALLOW_INSECURE_REDIRECT_URIS and not DEBUG:
    raise ImproperlyConfigured("OAUTH_ALLOW_INSECURE_REDIRECT_URIS is for development only: it needs DEBUG on.")
# Server-side fetches of URLs chosen by others (CIMD documents, upstream OIDC discovery and JWKS, rotation
# token endpoints, service APIs) refuse every non-public address (authsec_site.lib.outbound). Development and
# tests only: also admit loopback targets (this replaces OAUTH_CIMD_ALLOW_LOOPBACK).
OUTBOUND_ALLOW_LOOPBACK = env_bool("OUTBOUND_ALLOW_LOOPBACK", False)
LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_IP = env_int("LOGIN_MAX_FAILURES_PER_IP", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=10)
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # no "plain"
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,  # RFC 9207 iss on authorization responses
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # tokens stored hashed, never in plaintext
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "CLIENT_SECRET_HASHER": "authsec_client_secret",  # random 256-bit secrets: no slow hash needed
    "ROTATE_REFRESH_TOKEN": True,
    "ACCESS_TOKEN_GENERATOR": "oauth.tokens.random_token",  # replaced by the signed JWT before it is stored or sent
    "REFRESH_TOKEN_GENERATOR": "oauth.tokens.random_token",  # 256 random bits
    "REFRESH_TOKEN_REUSE_PROTECTION": True,  # a reused refresh token revokes its whole family
    "ACCESS_TOKEN_EXPIRE_SECONDS": OAUTH_ACCESS_TOKEN_SECONDS,
    "ID_TOKEN_EXPIRE_SECONDS": OAUTH_ID_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": OAUTH_REFRESH_TOKEN_SECONDS,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "CLEAR_EXPIRED_TOKENS_BATCH_SIZE": CLEANUP_BATCH_SIZE,
    "OAUTH2_VALIDATOR_CLASS": "oauth.validators.TenantOAuth2Validator",
    "SCOPES_BACKEND_CLASS": "oauth.scopes.TenantScopes",
    "APPLICATION_ADMIN_CLASS": "oauth.admin.ClientAdmin",
    "REQUEST_APPROVAL_PROMPT": "auto",
    # http only for loopback, private-use schemes only for native clients: decided per URI in oauth.redirect_uris.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    "ALLOW_LOCALHOST_LOOPBACK": True,  # RFC 8252: loopback redirects with any port for native clients
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "none"],
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth.registration.TenantDCRPermission",),
    "CIMD_ENABLED": True,
    "CIMD_METADATA_FETCHER": "oauth.registration.TenantCIMDFetcher",
    "CIMD_REGISTRATION_PERMISSION_CLASSES": ("oauth.registration.TenantCIMDPermission",),
}
LOGIN_URL = "accounts-login"

# --- Audit log (tamper-evident chain, review pages, retention) -------------------------------------------
# Default retention of a schema's events in the database (each tenant can change it in its dashboard; 0 keeps
# everything). Older events are archived to gzip JSON Lines under AUDIT_ARCHIVE_DIR/<schema>/, then deleted.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=0)
AUDIT_ARCHIVE_DIR = BASE_DIR / env_str("AUDIT_ARCHIVE_DIR", str(LOCAL_DIR / "audit-archive"))  # relative: to BASE_DIR
# Seconds between runs of the retention job (Celery beat).
AUDIT_RETENTION_INTERVAL = env_int("AUDIT_RETENTION_INTERVAL", 24 * 3600, minimum=60)
# Seconds between beat's verifications of every schema's hash chain (audit.tasks.verify_chains, docs/audit.md).
AUDIT_VERIFY_INTERVAL = env_int("AUDIT_VERIFY_INTERVAL", 24 * 3600, minimum=60)
# Streaming to SIEMs (audit/streaming, docs/audit.md#streaming-to-a-siem): seconds between Celery beat's looks for
# sinks with undelivered events; seconds one delivery may take; the backoff's cap; failures before a sink is
# dead-lettered (it is then tried every AUDIT_SINK_RETRY_MAX seconds); non-public networks (CIDRs) sinks may reach.
AUDIT_STREAM_INTERVAL = env_int("AUDIT_STREAM_INTERVAL", 5, minimum=1)
AUDIT_SINK_TIMEOUT = env_int("AUDIT_SINK_TIMEOUT", 10, minimum=1)
AUDIT_SINK_RETRY_MAX = env_int("AUDIT_SINK_RETRY_MAX", 600, minimum=1)
AUDIT_SINK_DEAD_LETTER_AFTER = env_int("AUDIT_SINK_DEAD_LETTER_AFTER", 10, minimum=1)
AUDIT_SINK_ALLOWED_NETWORKS = env_list("AUDIT_SINK_ALLOWED_NETWORKS", [])
# An event's trace in the operator's tracing UI, e.g. https://jaeger.example.com/trace/{trace_id}: the review
# page and the admin link each event's trace id there (OpenTelemetry traces: docs/observability.md).
AUDIT_TRACE_URL = env_str("AUDIT_TRACE_URL", "")
if AUDIT_TRACE_URL and (
    "{trace_id}" not in AUDIT_TRACE_URL or urlsplit(AUDIT_TRACE_URL).scheme not in ("http", "https")
):
    raise ImproperlyConfigured(
        f"AUDIT_TRACE_URL must be an http(s) URL containing {{trace_id}}, got {AUDIT_TRACE_URL!r}"
    )
# --- end of audit log ------------------------------------------------------------------------------------------

# --- MCP endpoint ---
# Lifetime of a login-tool auth session (oauth_start … oauth_logout), in seconds.
MCP_AUTH_SESSION_SECONDS = env_int("MCP_AUTH_SESSION_SECONDS", 3600, minimum=60)
# Seconds a started login may wait for the browser's sign-in and explicit confirmation (RFC 8628 §5.4: short).
MCP_AUTH_PENDING_SECONDS = env_int("MCP_AUTH_PENDING_SECONDS", 600, minimum=60)
if MCP_AUTH_PENDING_SECONDS > 600:
    raise ImproperlyConfigured(f"MCP_AUTH_PENDING_SECONDS must be at most 600, got {MCP_AUTH_PENDING_SECONDS}")
# Seconds an auth session is kept past its expiry before the cleanup job deletes it (late status calls still
# answer "expired"; the dashboard lists recent logins).
MCP_AUTH_SESSION_KEEP_SECONDS = env_int("MCP_AUTH_SESSION_KEEP_SECONDS", 24 * 3600, minimum=0)
# Handshake-era MCP sessions (Mcp-Session-Id) idle longer than this are closed; the client re-initializes.
MCP_SESSION_IDLE_SECONDS = env_int("MCP_SESSION_IDLE_SECONDS", 1800, minimum=30)
# Modules whose import registers MCP tools (@protected_by_AuthSec); imported when the app starts, so a name that
# cannot be imported stops start-up with a message naming it.
AUTHSEC_TOOL_MODULES = env_list("AUTHSEC_TOOL_MODULES", ["mcp_endpoint.demo_tools"])
# Who writes the MCP endpoint's audit events: "process" (a child process per web process, off the event
# loop's GIL) or "thread" (a writer thread in the web process: less memory, slower tool calls).
MCP_AUDIT_WRITER = env_str("MCP_AUDIT_WRITER", "process")
if MCP_AUDIT_WRITER not in ("process", "thread"):
    raise ImproperlyConfigured(f'MCP_AUDIT_WRITER must be "process" or "thread", not {MCP_AUDIT_WRITER!r}.')
# Where each web process journals its queued audit events until they are written (docs/audit.md#what-is-promised):
# on a disk that outlives the process, shared by the nodes of one machine.
AUDIT_SPOOL_DIR = BASE_DIR / env_str("AUDIT_SPOOL_DIR", str(LOCAL_DIR / "audit-spool"))  # relative: to BASE_DIR
# ------------------------------------------------------------------------------------------
# Hosts and origins the MCP endpoint accepts (DNS-rebinding protection); defaults follow AUTHSEC_PUBLIC_URL.
MCP_ALLOWED_HOSTS = env_list(
    "MCP_ALLOWED_HOSTS", [_public.netloc, "127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
)
MCP_ALLOWED_ORIGINS = env_list(
    "MCP_ALLOWED_ORIGINS", [f"{_public.scheme}://{_public.netloc}", "http://127.0.0.1:*", "http://localhost:*"]
)

# --- REST management API (DRF + drf-spectacular) ---------------------------------------------------------------
# Served at /t/<tenant>/api/ (the app `api`). Staff sessions only for now; OAuth bearer authentication comes later
# and will be added to DEFAULT_AUTHENTICATION_CLASSES. Every view also needs the Django model permission
# (view_ for reads).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "oauth.authentication.BearerTokenAuthentication",  # OAuth access tokens with the "admin" scope
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.IsStaff", "api.permissions.ModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["rest_framework.filters.SearchFilter", "rest_framework.filters.OrderingFilter"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    # One JSON parser for every JSON body, with its depth, size and key limits (authsec_site.lib.jsonbody).
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AuthSec Server management API",
    "DESCRIPTION": "Roles, groups, scopes, resources, permissions, bindings and tool policies of one organisation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are for the same staff as the API; paths carry /t/<tenant>/ (api.schema).
    "SERVE_PERMISSIONS": ["api.permissions.IsStaff"],
    "SCHEMA_PATH_PREFIX": r"/(t/[^/]+/)?api/",
    "COMPONENT_SPLIT_REQUEST": True,
}
# --- end of REST management API ----------------------------------------------------------------------------------

# --- SPIFFE workload identities (workloads app; docs/spiffe.md) -------------------------------------------------
# Each tenant is the trust domain "<slug>.<SPIFFE_TRUST_DOMAIN_SUFFIX>" with its own CA in Vault PKI.
SPIFFE_TRUST_DOMAIN_SUFFIX = env_str("SPIFFE_TRUST_DOMAIN_SUFFIX", "authsec.local").lower().strip(".")
if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", SPIFFE_TRUST_DOMAIN_SUFFIX):
    raise ImproperlyConfigured(
        f"SPIFFE_TRUST_DOMAIN_SUFFIX must be a DNS-like name (letters, digits, dots, hyphens), "
        f"got {SPIFFE_TRUST_DOMAIN_SUFFIX!r}"
    )
# SVID files: <SVID_DIR>/<tenant>/<workload>/{svid.crt,svid.key,ca.crt}; the platform's own under _platform/.
SVID_DIR = BASE_DIR / env_str("SVID_DIR", str(LOCAL_DIR / "svids"))  # relative: to BASE_DIR
SVID_DEFAULT_TTL = env_int("SVID_DEFAULT_TTL", 3600, minimum=60)
SVID_MAX_TTL = env_int("SVID_MAX_TTL", 7 * 24 * 3600, minimum=60)
SPIFFE_CA_TTL = env_int("SPIFFE_CA_TTL", 10 * 365 * 24 * 3600, minimum=86400)
try:
    SVID_RENEW_FRACTION = float(env_str("SVID_RENEW_FRACTION", "0.5"))
except ValueError:
    raise ImproperlyConfigured("SVID_RENEW_FRACTION must be a number between 0.1 and 0.9, e.g. 0.5") from None
if not 0.1 <= SVID_RENEW_FRACTION <= 0.9:
    raise ImproperlyConfigured(f"SVID_RENEW_FRACTION must be between 0.1 and 0.9, got {SVID_RENEW_FRACTION}")
SVID_RENEWAL_INTERVAL = env_int("SVID_RENEWAL_INTERVAL", 60, minimum=5)
SVID_RETRY_BACKOFF = env_int("SVID_RETRY_BACKOFF", 5, minimum=1)
SVID_RETRY_BACKOFF_MAX = env_int("SVID_RETRY_BACKOFF_MAX", 300, minimum=1)
SVID_MAX_RETRIES = env_int("SVID_MAX_RETRIES", 10, minimum=0)
# SPIRE agent (Workload API) socket, e.g. unix:///run/spire/sockets/agent.sock: when set, the platform's own
# identity comes from it (py-spiffe X509Source) and is written under <SVID_DIR>/_platform/.
SPIFFE_ENDPOINT_SOCKET = env_str("SPIFFE_ENDPOINT_SOCKET")
# --- end of SPIFFE -----------------------------------------------------------------------------------------------

# --- Services (Vault-backed credentials) and their rotation ------------------------------------------------------
SERVICES_KEEP_VERSIONS = env_int("SERVICES_KEEP_VERSIONS", 10, minimum=2)
SERVICES_CACHE_SECONDS = env_int("SERVICES_CACHE_SECONDS", 30, minimum=0)
if SERVICES_CACHE_SECONDS > 60:
    raise ImproperlyConfigured(f"SERVICES_CACHE_SECONDS must be at most 60, got {SERVICES_CACHE_SECONDS}")
SERVICES_ROTATION_CHECK_INTERVAL = env_int("SERVICES_ROTATION_CHECK_INTERVAL", 300, minimum=5)
SERVICES_ROTATION_MAX_RETRIES = env_int("SERVICES_ROTATION_MAX_RETRIES", 5, minimum=0)
SERVICES_ROTATION_RETRY_BACKOFF = env_int("SERVICES_ROTATION_RETRY_BACKOFF", 30, minimum=1)
SERVICES_HTTP_TIMEOUT = env_int("SERVICES_HTTP_TIMEOUT", 10, minimum=1)
# --- end of services ----------------------------------------------------------------------------------------------

# --- AuthSec SDK compatibility (/sdkmgr/…; docs/sdk.md) ---------------------------------------------------------
# Requests per minute per SDK client id (all endpoints), and logins started (oauth_start / start) per minute.
SDKMGR_RATE_LIMIT_PER_MINUTE = env_int("SDKMGR_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE = env_int("SDKMGR_LOGIN_RATE_LIMIT_PER_MINUTE", 30, minimum=1)
# The SDK's CIBA client (CIBAClient, under /t/<tenant>/oauth/; docs/ciba.md): how long a backchannel sign-in request
# waits for its user (and the most a client may ask for), and the seconds a client waits between two polls.
CIBA_REQUEST_SECONDS = env_int("CIBA_REQUEST_SECONDS", 300, minimum=30)
CIBA_POLL_INTERVAL = env_int("CIBA_POLL_INTERVAL", 5, minimum=1)
# --- end of AuthSec SDK compatibility ---------------------------------------------------------------------------

# --- Prometheus metrics (/metrics; docs/observability.md) --------------------------------------------------------
# /metrics answers only a scraper with this bearer token and/or (when set) from these addresses or CIDRs; with
# neither set it answers 404 (never public by default). When both are set, both must match.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
try:
    parse_networks(METRICS_ALLOWED_IPS)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc).replace("TRUSTED_PROXIES", "METRICS_ALLOWED_IPS")) from None
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (a random one: openssl rand -hex 32).")
# --- end of Prometheus metrics -----------------------------------------------------------------------------------

# --- Demo data ------------------------------------------------------------------------------------------------
AUTHSEC_DEMO_PASSWORD = env_str("AUTHSEC_DEMO_PASSWORD", "authsec-demo")

# --- Logging: one line per event on stderr; secrets never reach a log call -------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "hvac": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
