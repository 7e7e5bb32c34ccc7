"""External services: metadata, access requirement and rotation policy in Postgres; secrets only in Vault.

A `Service` row keeps the Vault path and the version that is current, never a secret value. Every new
version (created, replaced, rotated) gets a `SecretVersion` row saying when and by whom, without the value.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from rbac.engine import Requirement
from rbac.models import requirement_of

validate_service_name = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,127}$",
    "Use letters, digits, spaces and . _ ( ) - (up to 128 characters, starting with a letter or digit).",
)


def _name_list() -> ArrayField:
    return ArrayField(models.CharField(max_length=160), default=list, blank=True)


class ServiceQuerySet(models.QuerySet["Service"]):
    def due_for_rotation(self, now: Any = None) -> list[Service]:
        """Services whose interval policy says a rotation is due (or whose last rotation failed)."""
        now = now or timezone.now()
        candidates = self.filter(rotation_policy=Service.RotationPolicy.INTERVAL).exclude(
            rotation_kind=Service.RotationKind.NONE
        )
        return [service for service in candidates if service.is_rotation_due(now)]


class Service(models.Model):
    """An external service a tool may call; its credentials live in Vault at `vault_path` (KV v2).

    Invariant: `vault_version` is a version that exists in Vault and holds a complete secret; it only moves
    forward after Vault accepted the new version (see `services.services`)."""

    class ServiceType(models.TextChoices):
        API_KEY = "api_key", "API key"
        BEARER_TOKEN = "bearer_token", "Bearer token"
        BASIC_AUTH = "basic_auth", "Basic auth"
        OAUTH2 = "oauth2", "OAuth 2.0"
        DATABASE = "database", "Database"

    class AuthType(models.TextChoices):
        BEARER = "bearer", "Authorization: Bearer"
        HEADER = "header", "API key header"
        BASIC = "basic", "HTTP basic"
        QUERY = "query", "Query parameter"
        NONE = "none", "None (credentials used directly)"

    class RotationPolicy(models.TextChoices):
        NONE = "none", "Never"
        INTERVAL = "interval", "Every N days"
        ON_DEMAND = "on_demand", "On demand"

    class RotationKind(models.TextChoices):
        NONE = "none", "None"
        GENERATED = "generated", "Generated secret"
        OAUTH2_REFRESH = "oauth2_refresh", "OAuth2 refresh"
        DATABASE = "database", "PostgreSQL (Vault database engine)"

    class Status(models.TextChoices):
        PENDING = "pending", "No secret yet"
        ACTIVE = "active", "Active"
        ROTATION_FAILED = "rotation_failed", "Rotation failed"

    name = models.CharField(max_length=128, unique=True, validators=[validate_service_name])
    service_type = models.CharField(max_length=32, choices=ServiceType.choices, default=ServiceType.BEARER_TOKEN)
    auth_type = models.CharField(max_length=16, choices=AuthType.choices, default=AuthType.BEARER)
    base_url = models.URLField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Non-secret details returned to tools.")
    # Who may read it through a tool: the same lists and semantics as a tool policy (rbac.engine.decide).
    roles = _name_list()
    groups = _name_list()
    scopes = _name_list()
    resources = _name_list()
    permissions = _name_list()
    require_all = models.BooleanField(default=False)
    is_enabled = models.BooleanField(default=True, help_text="A disabled service cannot be read by any tool.")
    # Rotation
    rotation_policy = models.CharField(max_length=16, choices=RotationPolicy.choices, default=RotationPolicy.NONE)
    rotation_interval_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    rotation_kind = models.CharField(max_length=16, choices=RotationKind.choices, default=RotationKind.NONE)
    rotation_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Non-secret rotator settings: length/alphabet (generated), token_url/scope (OAuth2), role (DB).",
    )
    keep_versions = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(2), MaxValueValidator(100)], help_text="Versions Vault keeps."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    last_rotated_at = models.DateTimeField(null=True, blank=True)
    last_rotation_error = models.CharField(max_length=300, blank=True)
    rotation_failures = models.PositiveIntegerField(default=0)
    vault_path = models.CharField(max_length=300, blank=True, editable=False)
    vault_version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("rotate_service", "Can rotate a service's secret")]

    def __str__(self) -> str:
        return self.name

    def requirement(self) -> Requirement:
        return requirement_of(self)

    def is_rotation_due(self, now: Any = None) -> bool:
        """Interval policy only: never rotated, last rotation older than the interval, or last attempt failed."""
        if self.rotation_policy != self.RotationPolicy.INTERVAL or self.rotation_kind == self.RotationKind.NONE:
            return False
        if self.status == self.Status.ROTATION_FAILED or self.last_rotated_at is None:
            return True
        now = now or timezone.now()
        return self.last_rotated_at + timedelta(days=self.rotation_interval_days) <= now


class SecretVersion(models.Model):
    """One version of a service's secret as Vault numbered it: when, by whom, why. Never the value."""

    class Reason(models.TextChoices):
        CREATED = "created", "Created"
        REPLACED = "replaced", "Replaced"
        ROTATED = "rotated", "Rotated"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_by = models.CharField(max_length=255, help_text="Who made it (user email or system actor).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.service.name} v{self.version}"
