"""Tenants and their routing domains (public schema).

A tenant is an organisation with its own Postgres schema, OAuth issuer and audit log. It is reached at
``/t/<slug>/``; the `Domain` row whose ``domain`` equals the slug is what subfolder routing looks up.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# Slugs that would shadow a route or a schema we own.
RESERVED_SLUGS = frozenset(
    {"public", "admin", "api", "static", "media", "t", "www", "sdkmgr", "well-known", "information-schema"}
)


def validate_tenant_slug(value: str) -> None:
    if not SLUG_PATTERN.match(value):
        raise ValidationError(
            "A tenant slug is 2-40 characters of lowercase letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen.",
            code="invalid_slug",
        )
    if value in RESERVED_SLUGS or value.startswith("pg-"):
        raise ValidationError(f"'{value}' is reserved; choose another slug.", code="reserved_slug")


def schema_name_for(slug: str) -> str:
    """The Postgres schema of a tenant: ``tenant_<slug>`` with hyphens turned into underscores."""
    return "tenant_" + slug.replace("-", "_")


class TenantQuerySet(models.QuerySet["Tenant"]):
    def serving(self, schema_name: str | None = None) -> TenantQuerySet:
        """Active tenants, never the public schema (optionally only the one with `schema_name`)."""
        tenants = self.filter(is_active=True).exclude(schema_name="public")
        return tenants.filter(schema_name=schema_name) if schema_name else tenants


class Tenant(TenantMixin):
    """An organisation: one schema, one issuer. Inactive tenants answer 404 everywhere."""

    slug = models.SlugField(max_length=40, unique=True, validators=[validate_tenant_slug])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    # create_tenant() migrates the new schema; deleting a Tenant row never silently drops data.
    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_public(self) -> bool:
        return self.schema_name == "public"

    @property
    def url_prefix(self) -> str:
        """Path prefix of every URL of this tenant, e.g. ``/t/acme/``."""
        return f"/t/{self.slug}/"


class Domain(DomainMixin):
    """A routing key of a tenant: its slug for ``/t/<slug>/`` routing (host names are a later extra)."""

    class Meta:
        ordering = ["domain"]
