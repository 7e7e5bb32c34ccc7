"""OAuth data of a tenant: clients (DOT's swappable application model), remembered consents, signing-key
metadata (private keys live only in Vault) and the tenant's provider settings."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from oauth2_provider.models import AbstractApplication

import audit
from audit.recorder import Actor
from oauth.redirect_uris import RedirectURIError, check_redirect_uri, is_allowed_redirect_uri

logger = logging.getLogger(__name__)


class Client(AbstractApplication):
    """An OAuth client of this tenant. Pending clients (held dynamic registrations) cannot obtain tokens.

    Every client signs its ID tokens with RS256 and the tenant's current key (`jwk_key`, fetched from Vault),
    whichever path created it (dashboard, dynamic registration, CIMD, code): the field's default, and a
    database constraint, so no path can leave a client that answers 500 to an `openid` token request.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PENDING = "pending", "Pending approval"
        REJECTED = "rejected", "Rejected"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    is_resource_server = models.BooleanField(
        default=False, help_text="May call the introspection endpoint with its client credentials (RFC 7662)."
    )
    is_ciba_client = models.BooleanField(
        default=False,
        verbose_name="may ask users to approve sign-ins (CIBA)",
        help_text="Backchannel sign-in (the AuthSec SDK's CIBAClient): the client names a user, the user approves on "
        "the approval page, the client polls for the token. Needs a confidential client (it authenticates with its "
        "secret); see docs/ciba.md.",
    )
    description = models.TextField(blank=True)
    # DOT's default is "no OIDC support", which its token endpoint turns into a 500 on the default `openid` scope.
    algorithm = models.CharField(
        max_length=5,
        choices=[(AbstractApplication.RS256_ALGORITHM, "RSA with SHA-2 256")],
        default=AbstractApplication.RS256_ALGORITHM,
        editable=False,
        verbose_name="ID token algorithm",
    )

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        ordering = ["name", "client_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(algorithm="RS256"), name="oauth_client_signs_id_tokens_rs256"),
        ]

    def refusal(self, tenant_name: str) -> str | None:
        """Why this client may not sign anyone in, in words for the user and the client's developer (None: it may).

        The same sentence is the authorization page's and the token endpoint's `error_description`."""
        name = self.name or self.client_id
        if self.status == self.Status.PENDING:
            return f"{name} is waiting for approval by an administrator of {tenant_name}."
        if self.status == self.Status.REJECTED:
            return f"{name} was rejected by an administrator of {tenant_name} and cannot sign anyone in."
        return None

    def is_usable(self, request: Any) -> bool:
        """DOT asks this before every use of a client: pending or rejected clients get `invalid_client`."""
        return self.status == self.Status.ACTIVE and super().is_usable(request)

    @property
    def jwk_key(self) -> Any:
        if self.algorithm == self.RS256_ALGORITHM:
            from oauth.keys import current_signing_jwk

            return current_signing_jwk()
        return super().jwk_key

    @property
    def is_native(self) -> bool:
        """Native apps are public clients (OAuth 2.1 §2.1): only they may use private-use redirect schemes."""
        return self.client_type == self.CLIENT_PUBLIC

    def redirect_uri_allowed(self, uri: str) -> bool:
        """DOT's exact match, and the redirect-URI policy again: a row saved before the policy (or written
        around `clean`) never sends a code to a URI the policy refuses."""
        if not is_allowed_redirect_uri(uri, native=self.is_native):
            logger.warning("Client %s: redirect URI refused by the redirect-URI policy", self.client_id)
            return False
        return super().redirect_uri_allowed(uri)

    @property
    def default_redirect_uri(self) -> str:
        # oauthlib uses this when a request has no redirect_uri, without asking `redirect_uri_allowed`.
        uri = super().default_redirect_uri
        return uri if is_allowed_redirect_uri(uri, native=self.is_native) else ""

    def get_allowed_schemes(self) -> list[str]:
        """Schemes DOT may redirect this client to: https, http (loopback, checked per URI) and the
        private-use schemes of its own redirect URIs that pass the policy."""
        own = [
            urlsplit(uri).scheme
            for uri in self.redirect_uris.split()
            if is_allowed_redirect_uri(uri, native=self.is_native)
        ]
        return list(dict.fromkeys(["https", "http", *own]))

    def save(self, *args: Any, **kwargs: Any) -> None:
        first_sight = self._state.adding
        if self.registration_source == self.RegistrationSource.CIMD:
            self._hold_self_registered_client(first_sight)
        super().save(*args, **kwargs)
        if first_sight and self.registration_source == self.RegistrationSource.CIMD:
            self.audit_registered("cimd")

    def audit_registered(self, source: str) -> None:
        """`oauth.client_registered`, by the client itself, for a registration through `source` (dcr, cimd)."""
        audit.record(
            Actor("client", self.client_id, self.name),
            "oauth.client_registered",
            target=self,
            data={
                "client_id": self.client_id,
                "status": self.status,
                "redirect_uris": self.redirect_uris,
                "source": source,
            },
        )

    def _hold_self_registered_client(self, first_sight: bool) -> None:
        """A CIMD client registers itself on first sight (DOT writes the row), like a dynamic registration: it
        is active at once only where the tenant's registration is `open`; otherwise it waits, pending, for an
        admin. A re-fetched document that changes what an admin approved (redirect URIs, name, grant or client
        type) sends an active client back to pending: the admin approved the old document, not the new one."""
        if ProviderSettings.current().dynamic_registration == ProviderSettings.Registration.OPEN:
            return
        if first_sight:
            self.status = self.Status.PENDING
            return
        approved = ("redirect_uris", "name", "authorization_grant_type", "client_type", "post_logout_redirect_uris")
        stored = type(self).objects.filter(pk=self.pk).values(*approved).first()
        changed = stored is not None and any(stored[field] != getattr(self, field) for field in approved)
        if changed and self.status == self.Status.ACTIVE:
            self.status = self.Status.PENDING

    def clean(self) -> None:
        # Every redirect URI, and every post-logout redirect URI, must pass the policy (oauth.redirect_uris);
        # reported on its field, one line each.
        problems: dict[str, list[ValidationError]] = {}
        if self.client_id.isdigit():
            # A client-credentials token names its client as `sub`, where a number names a user.
            message = "A client ID cannot be a number only: a number is a user's ID in tokens."
            problems["client_id"] = [ValidationError(message, code="invalid")]
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            for uri in getattr(self, field).split():
                try:
                    check_redirect_uri(uri, native=self.is_native)
                except RedirectURIError as exc:
                    message = f"{uri[:200]}: {exc.message}"
                    problems.setdefault(field, []).append(ValidationError(message, code="invalid_redirect_uri"))
        # DOT checks OIDC_RSA_PRIVATE_KEY for RS256 clients; our keys are per tenant in Vault instead.
        algorithm = self.algorithm
        if algorithm == self.RS256_ALGORITHM:
            self.algorithm = self.NO_ALGORITHM
        try:
            super().clean()
        except ValidationError as exc:
            if not problems:
                raise
            errors = exc.update_error_dict({})
            errors.update(problems)  # ours say why; DOT's scheme-list message would only repeat it
            raise ValidationError(errors) from None
        finally:
            self.algorithm = algorithm
        if problems:
            raise ValidationError(problems)

    def post_logout_redirect_uri_allowed(self, uri: str) -> bool:
        """DOT's exact match, and the redirect-URI policy again (as `redirect_uri_allowed`)."""
        return is_allowed_redirect_uri(uri, native=self.is_native) and super().post_logout_redirect_uri_allowed(uri)


class Consent(models.Model):
    """A user's approval of a client for some scopes; remembered until revoked (then asked again)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oauth_consents")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="consents")
    scopes = ArrayField(models.CharField(max_length=100), default=list)
    granted_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client"],
                condition=models.Q(revoked_at__isnull=True),
                name="oauth_consent_active_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.client}"

    def covers(self, scopes: set[str]) -> bool:
        return self.revoked_at is None and scopes <= set(self.scopes)


class SigningKey(models.Model):
    """Public half and lifecycle of one RS256 signing key; the private half is only in Vault (`vault_path`).

    The current key signs; a retired key stays in JWKS until `expires_at`, after every token it signed expired.
    """

    kid = models.CharField(max_length=64, unique=True)
    public_jwk = models.JSONField()
    vault_path = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.kid


class ProviderSettings(models.Model):
    """Per-tenant OAuth settings (a single row)."""

    class Registration(models.TextChoices):
        CLOSED = "closed", "Closed: only admins create clients"
        APPROVAL = "approval", "Open, held as pending until an admin approves"
        OPEN = "open", "Open: registered clients are active at once"

    dynamic_registration = models.CharField(max_length=16, choices=Registration.choices, default=Registration.APPROVAL)
    allow_cimd = models.BooleanField(
        default=True, help_text="Accept Client ID Metadata Documents (client_id is an https URL)."
    )

    class Meta:
        verbose_name = "provider settings"
        verbose_name_plural = "provider settings"

    def __str__(self) -> str:
        return "OAuth provider settings"

    @classmethod
    def current(cls) -> ProviderSettings:
        return cls.objects.get_or_create(pk=1)[0]


class UpstreamProviderQuerySet(models.QuerySet["UpstreamProvider"]):
    def enabled(self) -> UpstreamProviderQuerySet:
        return self.filter(is_enabled=True)


class UpstreamProvider(models.Model):
    """An external OpenID provider this tenant's users may sign in with ("Sign in with <name>").

    The client secret is only in Vault: `vault_path` and `secret_version` say where, and the row is written
    after the secret (oauth.upstream_services), so a row never names a version that does not exist.
    """

    name = models.CharField(max_length=100, help_text='Shown on the login page: "Sign in with <name>".')
    slug = models.SlugField(max_length=64, unique=True, help_text="Used in the callback URL; cannot change later.")
    issuer = models.URLField(
        max_length=500,
        help_text="The provider's issuer URL; <issuer>/.well-known/openid-configuration must exist and name it.",
    )
    client_id = models.CharField(max_length=255)
    scopes = models.CharField(max_length=255, default="openid email profile")
    is_enabled = models.BooleanField(default=True)
    auto_create_users = models.BooleanField(
        default=False, help_text="Create a user on first sign-in; otherwise only existing users may sign in."
    )
    allowed_email_domains = ArrayField(
        models.CharField(max_length=253),
        default=list,
        blank=True,
        help_text="Comma-separated; when set, only verified emails in these domains may sign in.",
    )
    vault_path = models.CharField(max_length=255, editable=False)
    secret_version = models.PositiveIntegerField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UpstreamProviderQuerySet.as_manager()

    class Meta:
        ordering = ["name", "slug"]
        verbose_name = "upstream identity provider"

    def __str__(self) -> str:
        return self.name

    def allows_email_domain(self, email: str) -> bool:
        if not self.allowed_email_domains:
            return True
        domain = email.rpartition("@")[2].lower()
        return domain in {d.strip().lstrip("@").lower() for d in self.allowed_email_domains}


class ResourceServer(models.Model):
    """An MCP server outside this platform, protected by the published SDK's runtime API (`mount_mcp`).

    Its id is the SDK's `resource_server_id`; `client` holds its introspection credentials, which also
    authenticate its `sdk-policy` and `sdk-manifest` calls. `generation` grows on every change to the policy
    the SDK fetches, so an admin can see which version a server last read.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    resource_uri = models.CharField(
        "resource URI",
        max_length=500,
        unique=True,
        help_text="The SDK's AUTHSEC_RESOURCE_URI, exactly (e.g. https://mcp.example.com/mcp). Tokens requested "
        "with resource=<this URI> carry it as their audience.",
    )
    client = models.OneToOneField(Client, on_delete=models.PROTECT, related_name="resource_server", editable=False)
    scopes = models.ManyToManyField(
        "rbac.Scope",
        blank=True,
        related_name="resource_servers",
        verbose_name="supported scopes",
        help_text="Advertised to MCP clients in the server's protected-resource metadata (scopes_supported).",
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive: no new tokens for it, introspection answers inactive, every tool is denied."
    )
    generation = models.PositiveBigIntegerField(default=1, editable=False)
    manifest_published_at = models.DateTimeField(null=True, blank=True, editable=False)
    policy_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    policy_fetched_generation = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "resource_uri"]
        verbose_name = "resource server (SDK runtime)"
        verbose_name_plural = "resource servers (SDK runtime)"

    def __str__(self) -> str:
        return self.name


class ResourceServerTool(models.Model):
    """One tool of a resource server: pushed by its manifest (or added by an admin) and mapped by an admin.

    A tool is allowed for any valid token when `is_public`, for a token holding at least one of
    `required_scopes` otherwise; a tool with neither is denied (the SDK denies unmapped tools).
    """

    resource_server = models.ForeignKey(ResourceServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(null=True, blank=True)
    suggested_scopes = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    is_public = models.BooleanField(default=False, help_text="Any valid token of this issuer may call it.")
    required_scopes = models.ManyToManyField(
        "rbac.Scope",
        blank=True,
        related_name="resource_server_tools",
        help_text="A token needs at least one of these scopes.",
    )
    in_manifest = models.BooleanField(default=True, editable=False, help_text="Listed in the last manifest.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "tool"
        constraints = [
            models.UniqueConstraint(fields=["resource_server", "name"], name="oauth_rs_tool_unique"),
        ]

    def __str__(self) -> str:
        return self.name
