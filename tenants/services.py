"""Tenant lifecycle: the one place that creates (and provisions), renames, activates and deactivates a tenant.
Each write is an `audit.writes.service` (one durable transaction with its events)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django_tenants.utils import schema_context

import audit
from accounts.models import User, normalize_email_address
from audit.models import AuditEvent
from audit.recorder import Actor
from audit.writes import service
from tenants.models import Domain, Tenant, schema_name_for, validate_tenant_slug
from tenants.signals import tenant_created

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedTenant:
    tenant: Tenant
    admin: User
    # Set only when the caller gave no password and one was generated: shown once, never stored.
    generated_password: str | None


def ensure_public_tenant() -> Tenant:
    """The row django-tenants needs for the public schema (platform pages). Safe to call repeatedly."""
    tenant, _ = Tenant.objects.get_or_create(
        schema_name="public", defaults={"slug": "public", "name": "AuthSec platform", "is_active": True}
    )
    return tenant


def _platform_actor(actor: Any) -> Actor:
    if isinstance(actor, User):
        return Actor(AuditEvent.ActorType.SYSTEM, "", f"platform:{actor.email}")
    if isinstance(actor, Actor):
        return Actor(AuditEvent.ActorType.SYSTEM, "", f"platform:{actor.label}")
    return Actor(AuditEvent.ActorType.SYSTEM, "", f"platform:{actor or 'system'}")


def validate_new_tenant(slug: str, name: str, admin_email: str) -> None:
    errors: dict[str, list[str]] = {}
    try:
        validate_tenant_slug(slug)
    except ValidationError as exc:
        errors["slug"] = exc.messages
    if not errors.get("slug") and Tenant.objects.filter(slug=slug).exists():
        errors["slug"] = [f"A tenant with slug '{slug}' already exists."]
    if not name.strip():
        errors["name"] = ["A tenant needs a name."]
    try:
        validate_email(admin_email)
    except ValidationError:
        errors["admin_email"] = [f"'{admin_email}' is not a valid email address."]
    if errors:
        raise ValidationError(errors)


@service
def create_tenant(
    *,
    actor: Any,
    slug: str,
    name: str,
    admin_email: str,
    admin_password: str | None = None,
    verbosity: int = 0,
) -> CreatedTenant:
    """Create a tenant: its schema (fully migrated), its routing domain, its first admin, and audit events.

    Runs in one transaction, so a failure at any step leaves no schema, row or event behind. What lives
    outside Postgres (Vault policy, signing key, PKI) is provisioned after commit (`provision_outside_postgres`);
    the higher apps do their part through `tenants.signals.tenant_created`.
    """
    slug = slug.strip().lower()
    admin_email = normalize_email_address(admin_email)
    validate_new_tenant(slug, name, admin_email)
    generated = None
    if not admin_password:
        generated = admin_password = secrets.token_urlsafe(18)

    # One transaction for all of it: Postgres DDL is transactional, so if any step fails the schema,
    # its tables, the rows and the audit events all roll back together and nothing half-made remains.
    tenant = Tenant(schema_name=schema_name_for(slug), slug=slug, name=name.strip(), is_active=True)
    tenant.save(verbosity=verbosity)  # creates and migrates the schema
    Domain.objects.create(domain=slug, tenant=tenant, is_primary=True)
    with schema_context(tenant.schema_name):
        admin = User.objects.create_superuser(admin_email, admin_password)
        # Inside the tenant the actor is named, not linked: user ids of the platform mean nothing here.
        audit.record(_platform_actor(actor), "tenant.created", target=tenant, data={"slug": slug, "admin": admin_email})
    audit.record(actor, "tenant.created", target=tenant, data={"slug": slug, "admin": admin_email})
    transaction.on_commit(lambda: provision_outside_postgres(tenant.schema_name))
    logger.info("Created tenant %s (schema %s)", slug, tenant.schema_name)
    return CreatedTenant(tenant=tenant, admin=admin, generated_password=generated)


def provision_outside_postgres(schema_name: str) -> None:
    """After commit: what lives outside Postgres (the tenant's Vault policy and AppRole, then through
    `tenant_created` its OAuth signing key and SPIFFE CA). Idempotent; anything that fails here is created on
    first use instead, so a Vault outage never blocks tenant creation."""
    try:  # the tenant's own Vault policy and AppRole (services, keys and PKI are read with them)
        from authsec_site.lib import vault

        vault.ensure_tenant_access(schema_name)
    except Exception:
        logger.exception("Vault policy of %s could not be provisioned; it will be retried on first use", schema_name)
    for receiver, result in tenant_created.send_robust(sender=Tenant, schema_name=schema_name):
        if isinstance(result, Exception):
            logger.error(
                "Provisioning of %s outside Postgres failed (%s); it will be retried on first use",
                schema_name,
                getattr(receiver, "__qualname__", receiver),
                exc_info=result,
            )


@service
def set_tenant_active(*, actor: Any, tenant: Tenant, is_active: bool) -> Tenant:
    """Activate or deactivate a tenant; an inactive tenant answers 404 on every URL."""
    if tenant.is_public:
        raise ValidationError("The public schema cannot be deactivated.")
    if tenant.is_active != is_active:
        tenant.is_active = is_active
        tenant.save(update_fields=["is_active"])
        audit.record(actor, "tenant.activated" if is_active else "tenant.deactivated", target=tenant)
    return tenant


@service
def set_tenants_active(tenants: Iterable[Tenant], *, actor: Any, is_active: bool) -> int:
    """Activate or deactivate several tenants at once (a platform admin bulk action); returns how many changed."""
    count = 0
    for tenant in tenants:
        if tenant.is_active != is_active:
            set_tenant_active.nested(actor=actor, tenant=tenant, is_active=is_active)
            count += 1
    return count


@service
def save_tenant(
    tenant: Tenant,
    *,
    actor: Any,
    m2m: Mapping[str, Iterable[Any]] | None = None,
    admin_email: str = "",
    admin_password: str | None = None,
) -> Tenant:
    """The platform admin's tenant page. A new tenant is `create_tenant` (schema, domain, first admin
    `admin_email`), and `tenant` becomes the created row; on an existing one only the name (`tenant.renamed`)
    and the activation (`set_tenant_active`) change."""
    stored = Tenant.objects.select_for_update().filter(pk=tenant.pk).first() if tenant.pk is not None else None
    if stored is None:
        created = create_tenant.nested(
            actor=actor, slug=tenant.slug, name=tenant.name, admin_email=admin_email, admin_password=admin_password
        ).tenant
        tenant.pk, tenant.schema_name, tenant.created_at = created.pk, created.schema_name, created.created_at
        tenant.slug, tenant.name, tenant.is_active = created.slug, created.name, created.is_active
        tenant._state.adding = False
        return tenant
    name = tenant.name.strip()
    if name != stored.name:
        before = stored.name
        stored.name = name
        stored.save(update_fields=["name"])
        audit.record(actor, "tenant.renamed", target=stored, data={"before": before, "after": name})
    if tenant.is_active != stored.is_active:
        set_tenant_active.nested(actor=actor, tenant=stored, is_active=tenant.is_active)
    return stored
