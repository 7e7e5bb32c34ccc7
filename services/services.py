"""Writes of services and their secrets: create, change, replace, rotate, delete. Each is audited; none logs a
value. The dashboard's saves and deletes are `save_service` / `delete_service` (`audit.writes.service`).

Ordering keeps the invariant of `Service.vault_version`: a new version is written to Vault (check-and-set
against Vault's current version) *before* the row points at it, inside a transaction that holds the row
lock. If Vault fails, nothing changes in Postgres; if Postgres fails after Vault accepted the write, the row
still points at the previous, complete version and the next write simply goes on from Vault's newest.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

import audit
from audit import writes
from audit.models import AuditEvent
from authsec_site.lib import metrics, vault
from services.credentials import RotationError
from services.models import SecretVersion, Service

logger = logging.getLogger(__name__)

# The credential keys each type stores (the one `get_service_token` returns: `services.credentials.PRIMARY_KEY`).
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    Service.ServiceType.API_KEY: ("api_key",),
    Service.ServiceType.BEARER_TOKEN: ("access_token",),
    Service.ServiceType.BASIC_AUTH: ("username", "password"),
    Service.ServiceType.OAUTH2: ("access_token", "refresh_token", "client_id", "client_secret"),
    Service.ServiceType.DATABASE: ("username", "password", "lease_id"),
}
MAX_SECRET_LENGTH = 16_384


@dataclass(frozen=True)
class RotationResult:
    service_id: int
    rotated: bool
    version: int
    message: str


def _label(actor: Any) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return str(getattr(actor, "label", "") or getattr(actor, "email", "") or actor)


def clean_credentials(service: Service, credentials: Mapping[str, Any]) -> dict[str, str]:
    """Keep the keys this service type stores; refuse unknown keys, non-strings and oversize values."""
    allowed = SECRET_KEYS[service.service_type]
    errors = []
    cleaned: dict[str, str] = {}
    for key, value in credentials.items():
        if key not in allowed:
            errors.append(f"{key!r} is not a credential of a {service.get_service_type_display()} service.")
        elif not isinstance(value, str):
            errors.append(f"{key!r} must be text.")
        elif len(value) > MAX_SECRET_LENGTH:
            errors.append(f"{key!r} is longer than {MAX_SECRET_LENGTH} characters.")
        elif value:
            cleaned[key] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def secret_path(service: Service) -> str:
    """A new, never-used Vault path for the service (id + random part: a recreated database or tenant that
    reuses ids can never land on another service's old versions). Called once; the row keeps it."""
    return vault.tenant_path(connection.schema_name, "services", f"{service.pk}-{uuid.uuid4().hex[:16]}")


def _write_version(service: Service, data: Mapping[str, Any], base: int) -> tuple[int, list[int]]:
    """Write `data` as the next version in Vault, only if Vault's newest version is still `base` (read before
    the new value was computed): a concurrent writer makes this fail instead of being overwritten.

    Versions above the one the row points at were never committed: a write whose answer was lost (Vault stopped
    or timed out after it had taken the request) can land later. Their data is destroyed before the new version
    is written, so no never-used secret lingers in Vault. Returns (new version, the versions destroyed)."""
    schema = connection.schema_name
    vault.tenant_kv_configure(schema, service.vault_path, max_versions=service.keep_versions)
    stray = list(range(service.vault_version + 1, base + 1))
    if stray:
        vault.tenant_kv_destroy_versions(schema, service.vault_path, stray)
        logger.warning("Service %s: destroyed Vault versions %s that were never committed", service.pk, stray)
    return vault.tenant_kv_write(schema, service.vault_path, data, cas=base), stray


def _discarded(stray: list[int]) -> dict[str, Any]:
    return {"discarded_versions": stray} if stray else {}


def _read_current(service: Service) -> dict[str, Any]:
    """The credentials of the version the row points at; {} when Vault has none (never written, or lost)."""
    if not service.vault_version:
        return {}
    try:
        data, _ = vault.tenant_kv_read(connection.schema_name, service.vault_path, service.vault_version)
    except vault.VaultError as exc:
        if exc.reason != "not_found":
            raise
        return {}
    return data


def _commit_version(service: Service, version: int, reason: str, actor: Any, **extra: Any) -> None:
    events = {  # one event name per kind of version
        SecretVersion.Reason.CREATED: "service.secret_created",
        SecretVersion.Reason.REPLACED: "service.secret_replaced",
        SecretVersion.Reason.ROTATED: "service.secret_rotated",
    }
    service.vault_version = version
    service.status = Service.Status.ACTIVE
    fields = ["vault_version", "status", "updated_at"]
    if reason == SecretVersion.Reason.ROTATED:
        service.last_rotated_at = timezone.now()
        service.last_rotation_error = ""
        service.rotation_failures = 0
        fields += ["last_rotated_at", "last_rotation_error", "rotation_failures"]
    service.save(update_fields=fields)
    SecretVersion.objects.create(service=service, version=version, reason=reason, created_by=_label(actor))
    audit.record(
        actor,
        events[reason],
        target=service,
        data={"service": service.name, "vault_version": version, **extra},
    )
    transaction.on_commit(lambda: _drop_cache(service.pk))


def _drop_cache(service_id: int, schema_name: str | None = None) -> None:
    from services.sdk import drop_cached

    drop_cached(schema_name or connection.schema_name, service_id)


@writes.service
def save_service(
    service: Service,
    *,
    actor: Any,
    m2m: Mapping[str, Iterable[Any]] | None = None,
    credentials: Mapping[str, Any] | None = None,
) -> Service:
    """Create or change a service's settings and, with `credentials`, write its next secret version (merged over
    the current one): one transaction, so when Vault fails nothing of it is saved. A new service gets its Vault
    path (named after its id) in the same transaction."""
    writes.save(
        actor, service, m2m=m2m, created="service.created", changed="service.changed", data={"service": service.name}
    )
    if not service.vault_path:
        service.vault_path = secret_path(service)
        Service.objects.filter(pk=service.pk).update(vault_path=service.vault_path)
    data = clean_credentials(service, credentials or {})
    if data:
        replace_secret.nested(actor=actor, service=service, credentials=data)
    return service


@writes.service
def create_service(*, actor: Any, credentials: Mapping[str, Any] | None = None, **fields: Any) -> Service:
    """Create a service from field values (validated here), and its first secret version when `credentials` are
    given."""
    fields.setdefault("keep_versions", settings.SERVICES_KEEP_VERSIONS)
    new = Service(**fields)
    new.full_clean(exclude=["vault_path"])
    return save_service.nested(new, actor=actor, credentials=credentials)


@writes.service
def replace_secret(*, actor: Any, service: Service, credentials: Mapping[str, Any]) -> int:
    """Write a new version holding `credentials` merged over the current ones; returns the new version."""
    data = clean_credentials(service, credentials)
    if not data:
        raise ValidationError("Give at least one credential value.")
    locked = Service.objects.select_for_update().get(pk=service.pk)
    if not locked.vault_path:
        locked.vault_path = secret_path(locked)
        locked.save(update_fields=["vault_path"])
    base = vault.tenant_kv_current_version(connection.schema_name, locked.vault_path)
    merged = {**_read_current(locked), **data}
    reason = SecretVersion.Reason.REPLACED if locked.vault_version else SecretVersion.Reason.CREATED
    version, stray = _write_version(locked, merged, base)
    _commit_version(locked, version, reason, actor, keys_changed=sorted(data), **_discarded(stray))
    service.refresh_from_db()
    return version


@writes.service
def delete_service(service: Service, *, actor: Any) -> None:
    """Delete the row; after commit, every version of its secret in Vault and its cached secret (a rollback
    keeps both)."""
    schema, path, name, pk = connection.schema_name, service.vault_path, service.name, service.pk
    writes.delete(actor, service, event="service.deleted", data={"service": name})

    def _after_commit() -> None:
        _drop_cache(pk, schema)
        if not path:
            return
        try:
            vault.tenant_kv_delete_all(schema, path)
        except vault.VaultError as exc:
            logger.warning("Could not delete the Vault secret of service %s: %s", name, exc)

    transaction.on_commit(_after_commit)


def rotate_service(*, actor: Any, service_id: int, force: bool = False) -> RotationResult:
    """Rotate one service's secret with its rotator. Without `force` only when the policy says it is due, so
    two runs inside the window make one version. On failure the current version stays, the service shows
    "rotation failed", a failure event is audited, and `RotationError` is raised (the task retries)."""
    from services.rotators import get_rotator

    try:
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=service_id)
            if service.rotation_kind == Service.RotationKind.NONE:
                raise RotationError("This service has no rotation kind configured.")
            if not force and not service.is_rotation_due():
                return RotationResult(service.pk, False, service.vault_version, "not due yet")
            rotator = get_rotator(service.rotation_kind)
            schema = connection.schema_name
            if not service.vault_path:
                service.vault_path = secret_path(service)
                service.save(update_fields=["vault_path"])
            base = vault.tenant_kv_current_version(schema, service.vault_path)
            current = _read_current(service)
            new = rotator.rotate(service, dict(current))
            version, stray = _write_version(service, new, base)
            _commit_version(
                service,
                version,
                SecretVersion.Reason.ROTATED,
                actor,
                rotation_kind=service.rotation_kind,
                **_discarded(stray),
            )
            transaction.on_commit(lambda: rotator.after_commit(service, current, new))
        logger.info("Rotated service %s to version %s", service_id, version)
        metrics.rotation(service.name, True)
        return RotationResult(service_id, True, version, "rotated")
    except (vault.VaultError, RotationError) as exc:
        message = str(exc)[:300]
        _record_failure(actor, service_id, message)
        raise RotationError(message) from None


@transaction.atomic
def _record_failure(actor: Any, service_id: int, message: str) -> None:
    service = Service.objects.select_for_update().filter(pk=service_id).first()
    if service is None:
        return
    service.status = Service.Status.ROTATION_FAILED
    service.last_rotation_error = message
    service.rotation_failures += 1
    metrics.rotation(service.name, False)
    service.save(update_fields=["status", "last_rotation_error", "rotation_failures", "updated_at"])
    audit.record(
        actor,
        "service.rotation_failed",
        target=service,
        outcome=AuditEvent.Outcome.FAILURE,
        data={"service": service.name, "vault_version": service.vault_version, "error": message},
    )
    logger.warning("Rotation of service %s failed: %s", service_id, message)


def renew_or_reissue_lease(*, actor: Any, service_id: int) -> str:
    """Keep a database service's leased credentials alive between rotations: renew the lease while Vault grants
    at least two check intervals more, otherwise (max TTL reached, lease gone) lease new credentials through
    `rotate_service`. Returns "renewed", "reissued" or "skipped"."""
    service = Service.objects.filter(pk=service_id).first()
    if service is None or service.rotation_kind != Service.RotationKind.DATABASE or not service.vault_version:
        return "skipped"
    lease = _read_current(service).get("lease_id", "")
    ttl = 0
    if lease:
        try:
            ttl = vault.renew_lease(connection.schema_name, lease)
        except vault.VaultError as exc:
            logger.info("Lease of service %s could not be renewed (%s); leasing new credentials", service_id, exc)
    if ttl >= 2 * settings.SERVICES_ROTATION_CHECK_INTERVAL:
        return "renewed"
    rotate_service(actor=actor, service_id=service_id, force=True)
    return "reissued"
