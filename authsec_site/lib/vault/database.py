"""The database secrets engine: dynamic PostgreSQL credentials, one engine mount per tenant."""

from __future__ import annotations

from typing import Any

from authsec_site.lib.vault.approle import _as_tenant
from authsec_site.lib.vault.client import VaultError, _guard, client
from authsec_site.lib.vault.paths import _SEGMENT, database_mount


def configure_database(
    schema_name: str,
    *,
    connection: str,
    connection_url: str,
    username: str,
    password: str,
    role: str,
    creation_statements: list[str],
    revocation_statements: list[str],
    default_ttl: int,
    max_ttl: int,
) -> None:
    """With the platform credential: mount the tenant's database engine (if missing), write a PostgreSQL
    connection and a role. Idempotent. The admin password goes to Vault only."""
    mount = database_mount(schema_name)
    mounts = _guard("list secrets engines", lambda: client().sys.list_mounted_secrets_engines())
    if f"{mount}/" not in mounts.get("data", mounts):
        _guard("mount a database secrets engine", lambda: client().sys.enable_secrets_engine("database", path=mount))
    _guard(
        "configure a database connection",
        lambda: client().secrets.database.configure(
            name=connection,
            plugin_name="postgresql-database-plugin",
            allowed_roles=[role],
            connection_url=connection_url,
            username=username,
            password=password,
            verify_connection=True,
            mount_point=mount,
        ),
    )
    _guard(
        "write a database role",
        lambda: client().secrets.database.create_role(
            name=role,
            db_name=connection,
            creation_statements=creation_statements,
            revocation_statements=revocation_statements,
            default_ttl=f"{default_ttl}s",
            max_ttl=f"{max_ttl}s",
            mount_point=mount,
        ),
    )


def database_credentials(schema_name: str, role: str) -> dict[str, Any]:
    """Lease new credentials for `role` with the tenant's credentials: username, password, lease id, TTL."""
    if not _SEGMENT.match(role):
        raise VaultError(f"Invalid database role name {role!r}.", reason="invalid")
    mount = database_mount(schema_name)
    response = _as_tenant(
        schema_name,
        "lease database credentials",
        lambda c: c.secrets.database.generate_credentials(name=role, mount_point=mount),
    )
    return {
        "username": response["data"]["username"],
        "password": response["data"]["password"],
        "lease_id": response["lease_id"],
        "lease_duration": int(response["lease_duration"]),
        "renewable": bool(response["renewable"]),
    }


def _lease_path(schema_name: str, action: str, lease_id: str) -> str:
    prefix = database_mount(schema_name) + "/creds/"
    if not lease_id.startswith(prefix) or ".." in lease_id:
        raise VaultError("That lease does not belong to this tenant's database engine.", reason="denied")
    return f"/v1/sys/leases/{action}/{lease_id}"


def renew_lease(schema_name: str, lease_id: str, increment: int | None = None) -> int:
    """Renew a tenant's database lease; returns the new lease duration in seconds."""
    url = _lease_path(schema_name, "renew", lease_id)
    body = {"increment": increment} if increment else {}
    response = _as_tenant(schema_name, "renew a lease", lambda c: c.adapter.put(url, json=body))
    return int(response["lease_duration"])


def revoke_lease(schema_name: str, lease_id: str) -> None:
    """Revoke a tenant's database lease (Vault drops the database role it created)."""
    url = _lease_path(schema_name, "revoke", lease_id)
    _as_tenant(schema_name, "revoke a lease", lambda c: c.adapter.put(url))
