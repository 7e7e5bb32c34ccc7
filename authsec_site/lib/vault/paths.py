"""Where a tenant's things live in Vault: its KV subtree, its PKI and database mounts, its policy name.

Every name is built here from checked segments, so no caller can climb out of its tenant's subtree with
``..`` or ``/``.
"""

from __future__ import annotations

import re

from django.conf import settings

from authsec_site.lib.vault.client import VaultError

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")  # no leading dot


def _check_schema(schema_name: str) -> str:
    if not _SEGMENT.match(schema_name) or "." in schema_name:
        raise VaultError(f"Invalid Vault path segment {schema_name!r}.", reason="invalid")
    return schema_name


def tenant_path(schema_name: str, *parts: str) -> str:
    """The KV v2 path of a tenant's secret: ``<prefix>/tenants/<schema>/<parts…>`` (mount excluded).

    Each part is checked, so no caller can climb out of its tenant's subtree with ``..`` or ``/``.
    """
    segments = [schema_name, *parts]
    for segment in segments:
        if not _SEGMENT.match(segment) or ".." in segment:
            raise VaultError(f"Invalid Vault path segment {segment!r}.", reason="invalid")
    return "/".join([settings.VAULT_KV_PREFIX, "tenants", *segments])


def _tenant_path(schema_name: str, path: str) -> str:
    """Refuse a path outside the tenant's subtree before Vault has to."""
    prefix = tenant_path(schema_name) + "/"
    if not path.startswith(prefix) or ".." in path.split("/"):
        raise VaultError("That Vault path does not belong to this tenant.", reason="denied")
    return path


def _tenant_of(path: str) -> str | None:
    """The schema whose subtree `path` lies in (``<prefix>/tenants/<schema>/…``), else None."""
    parts = path.split("/")
    prefix = settings.VAULT_KV_PREFIX.split("/")
    if len(parts) > len(prefix) + 2 and parts[: len(prefix)] == prefix and parts[len(prefix)] == "tenants":
        return parts[len(prefix) + 1]
    return None


def pki_mount(schema_name: str) -> str:
    """The mount path of a tenant's PKI secrets engine (its SPIFFE CA): ``<prefix>-pki-<schema>``."""
    if not _SEGMENT.match(schema_name) or "." in schema_name:
        raise VaultError(f"Invalid Vault path segment {schema_name!r}.", reason="invalid")
    return f"{settings.VAULT_KV_PREFIX}-pki-{schema_name}"


def database_mount(schema_name: str) -> str:
    """The mount path of a tenant's database secrets engine: ``<prefix>-db-<schema>``."""
    return f"{settings.VAULT_KV_PREFIX}-db-{_check_schema(schema_name)}"


def tenant_policy_name(schema_name: str) -> str:
    """The name of the Vault policy (and AppRole) of a tenant: ``<prefix>-tenant-<schema>``."""
    return f"{settings.VAULT_KV_PREFIX}-tenant-{_check_schema(schema_name)}"
