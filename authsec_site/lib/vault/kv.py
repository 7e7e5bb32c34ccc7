"""KV v2 secrets: the platform's, and each tenant's (read and written with the tenant's own credentials)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from authsec_site.lib.vault.approle import _as_tenant
from authsec_site.lib.vault.client import VaultError, _guard, client
from authsec_site.lib.vault.paths import _tenant_of, _tenant_path


def kv_write(path: str, data: Mapping[str, Any]) -> int:
    """Write a new version of the KV v2 secret at `path`; returns the new version number.

    A path in a tenant's subtree is written with that tenant's own credentials (`tenant_client`)."""
    schema = _tenant_of(path)
    if schema is not None:
        return tenant_kv_write(schema, path, data)
    response = _guard(
        "write a secret",
        lambda: client().secrets.kv.v2.create_or_update_secret(
            path=path, secret=dict(data), mount_point=settings.VAULT_KV_MOUNT
        ),
    )
    return int(response["data"]["version"])


def kv_read(path: str, version: int | None = None) -> tuple[dict[str, Any], int]:
    """Read a KV v2 secret (latest or a given version); returns (data, version). Tenant paths: as `kv_write`."""
    schema = _tenant_of(path)
    if schema is not None:
        return tenant_kv_read(schema, path, version)
    response = _guard(
        "read a secret",
        lambda: client().secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point=settings.VAULT_KV_MOUNT, raise_on_deleted_version=True
        ),
    )
    return dict(response["data"]["data"]), int(response["data"]["metadata"]["version"])


def kv_delete_all(path: str) -> None:
    """Delete every version and the metadata of a KV v2 secret. Tenant paths: as `kv_write`."""
    schema = _tenant_of(path)
    if schema is not None:
        tenant_kv_delete_all(schema, path)
        return
    _guard(
        "delete a secret",
        lambda: client().secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=settings.VAULT_KV_MOUNT),
    )


def tenant_kv_read(schema_name: str, path: str, version: int | None = None) -> tuple[dict[str, Any], int]:
    """Read a tenant's KV v2 secret with the tenant's own credentials; returns (data, version)."""
    path = _tenant_path(schema_name, path)
    response = _as_tenant(
        schema_name,
        "read a secret",
        lambda c: c.secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point=settings.VAULT_KV_MOUNT, raise_on_deleted_version=True
        ),
    )
    return dict(response["data"]["data"]), int(response["data"]["metadata"]["version"])


def tenant_kv_write(schema_name: str, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int:
    """Write a new version with the tenant's credentials; with `cas`, only if the current version is `cas`
    (0 = the secret must not exist yet). Returns the new version; a lost race raises reason ``conflict``."""
    path = _tenant_path(schema_name, path)
    try:
        response = _as_tenant(
            schema_name,
            "write a secret",
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), cas=cas, mount_point=settings.VAULT_KV_MOUNT
            ),
        )
    except VaultError as exc:
        if cas is not None and exc.reason == "invalid" and "check-and-set" in str(exc):
            raise VaultError(
                "Another writer changed this secret first (check-and-set failed); nothing was written.",
                reason="conflict",
            ) from None
        raise
    return int(response["data"]["version"])


def tenant_kv_current_version(schema_name: str, path: str) -> int:
    """The newest version number of a tenant's secret (0 when it does not exist)."""
    path = _tenant_path(schema_name, path)
    try:
        response = _as_tenant(
            schema_name,
            "read a secret's metadata",
            lambda c: c.secrets.kv.v2.read_secret_metadata(path=path, mount_point=settings.VAULT_KV_MOUNT),
        )
    except VaultError as exc:
        if exc.reason == "not_found":
            return 0
        raise
    return int(response["data"]["current_version"])


def tenant_kv_destroy_versions(schema_name: str, path: str, versions: list[int]) -> None:
    """Destroy (permanently erase the data of) the given versions of a tenant's secret."""
    path = _tenant_path(schema_name, path)
    _as_tenant(
        schema_name,
        "destroy secret versions",
        lambda c: c.secrets.kv.v2.destroy_secret_versions(
            path=path, versions=versions, mount_point=settings.VAULT_KV_MOUNT
        ),
    )


def tenant_kv_configure(schema_name: str, path: str, *, max_versions: int, cas_required: bool = True) -> None:
    """Set how many versions Vault keeps of a tenant's secret, and require check-and-set on every write."""
    path = _tenant_path(schema_name, path)
    _as_tenant(
        schema_name,
        "configure a secret",
        lambda c: c.secrets.kv.v2.update_metadata(
            path=path, max_versions=max_versions, cas_required=cas_required, mount_point=settings.VAULT_KV_MOUNT
        ),
    )


def tenant_kv_delete_all(schema_name: str, path: str) -> None:
    """Delete every version and the metadata of a tenant's secret."""
    path = _tenant_path(schema_name, path)
    _as_tenant(
        schema_name,
        "delete a secret",
        lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=settings.VAULT_KV_MOUNT),
    )
