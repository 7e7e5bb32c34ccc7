"""The one door to Vault (OpenBao): the only module that imports hvac.

Everything else asks this module for secrets by tenant and name. Failures surface as `VaultError`, whose
message says what went wrong (unreachable, sealed, permission denied, not found) and never contains a
token or a secret value.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import hvac
import requests
from django.conf import settings
from hvac import exceptions as hvac_exc

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")  # no leading dot


class VaultError(Exception):
    """Vault could not do what was asked. `reason` is one of: unreachable, sealed, denied, not_found, invalid, error."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


_lock = threading.Lock()
_client: hvac.Client | None = None


def _new_client() -> hvac.Client:
    client = hvac.Client(
        url=settings.VAULT_ADDR,
        timeout=settings.VAULT_TIMEOUT,
        verify=settings.VAULT_CACERT or True,
    )
    if settings.VAULT_TOKEN:
        client.token = settings.VAULT_TOKEN
    elif settings.VAULT_ROLE_ID and settings.VAULT_SECRET_ID:
        _guard(
            "log in with AppRole",
            lambda: client.auth.approle.login(
                role_id=settings.VAULT_ROLE_ID,
                secret_id=settings.VAULT_SECRET_ID,
                mount_point=settings.VAULT_APPROLE_MOUNT,
            ),
        )
    else:
        raise VaultError(
            "No Vault credentials configured: set VAULT_TOKEN or VAULT_ROLE_ID + VAULT_SECRET_ID.", reason="invalid"
        )
    return client


def client() -> hvac.Client:
    """The process-wide authenticated client (created on first use, re-created with `reset_client`)."""
    global _client
    with _lock:
        if _client is None:
            _client = _new_client()
        return _client


def reset_client() -> None:
    """Forget the platform client and every cached tenant client (settings changed, or tests)."""
    global _client
    with _lock:
        _client = None
    forget_tenant_clients()


def _guard(what: str, call: Callable[[], T]) -> T:
    """Run one Vault call, translating every failure into a `VaultError` with a clear message."""
    addr = settings.VAULT_ADDR
    try:
        return call()
    except requests.exceptions.ConnectionError:
        raise VaultError(f"Vault at {addr} is unreachable (could not {what}).", reason="unreachable") from None
    except requests.exceptions.Timeout:
        raise VaultError(
            f"Vault at {addr} did not answer within {settings.VAULT_TIMEOUT}s (could not {what}).", reason="unreachable"
        ) from None
    except hvac_exc.VaultDown:
        raise VaultError(f"Vault at {addr} is sealed or in maintenance (could not {what}).", reason="sealed") from None
    except (hvac_exc.Forbidden, hvac_exc.Unauthorized):
        raise VaultError(
            f"Vault denied permission to {what}: check the token or AppRole policy.", reason="denied"
        ) from None
    except hvac_exc.InvalidPath:
        raise VaultError(f"Vault has nothing at the path needed to {what}.", reason="not_found") from None
    except hvac_exc.InvalidRequest as exc:
        raise VaultError(f"Vault rejected the request to {what}: {_errors(exc)}", reason="invalid") from None
    except hvac_exc.VaultError as exc:
        raise VaultError(f"Vault failed to {what}: {_errors(exc)}", reason="error") from None
    except requests.exceptions.RequestException as exc:
        raise VaultError(
            f"Vault at {addr} could not be reached to {what}: {type(exc).__name__}.", reason="unreachable"
        ) from None


def _errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    return "; ".join(str(e) for e in errors) if errors else type(exc).__name__


def tenant_path(schema_name: str, *parts: str) -> str:
    """The KV v2 path of a tenant's secret: ``<prefix>/tenants/<schema>/<parts…>`` (mount excluded).

    Each part is checked, so no caller can climb out of its tenant's subtree with ``..`` or ``/``.
    """
    segments = [schema_name, *parts]
    for segment in segments:
        if not _SEGMENT.match(segment) or ".." in segment:
            raise VaultError(f"Invalid Vault path segment {segment!r}.", reason="invalid")
    return "/".join([settings.VAULT_KV_PREFIX, "tenants", *segments])


def pki_mount(schema_name: str) -> str:
    """The mount path of a tenant's PKI secrets engine (its SPIFFE CA): ``<prefix>-pki-<schema>``."""
    if not _SEGMENT.match(schema_name) or "." in schema_name:
        raise VaultError(f"Invalid Vault path segment {schema_name!r}.", reason="invalid")
    return f"{settings.VAULT_KV_PREFIX}-pki-{schema_name}"


def _tenant_of(path: str) -> str | None:
    """The schema whose subtree `path` lies in (``<prefix>/tenants/<schema>/…``), else None."""
    parts = path.split("/")
    prefix = settings.VAULT_KV_PREFIX.split("/")
    if len(parts) > len(prefix) + 2 and parts[: len(prefix)] == prefix and parts[len(prefix)] == "tenants":
        return parts[len(prefix) + 1]
    return None


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


def health() -> dict[str, Any]:
    """Vault's health (initialized, sealed, version); raises `VaultError` when it cannot be reached."""
    status = _guard("read its health", lambda: client().sys.read_health_status(method="GET"))
    body = status.json() if hasattr(status, "json") else status
    if body.get("sealed"):
        raise VaultError(f"Vault at {settings.VAULT_ADDR} is sealed.", reason="sealed")
    return {"initialized": body.get("initialized"), "sealed": body.get("sealed"), "version": body.get("version")}


def token_is_valid() -> bool:
    """True when the configured credentials are accepted (a lookup-self succeeds)."""
    _guard("look up its own token", lambda: client().auth.token.lookup_self())
    return True


# --- Per-tenant credentials (least privilege) -----------------------------------------------------------------
#
# The platform credential (VAULT_TOKEN or the platform AppRole) only *mints* tenant credentials: each tenant
# has a policy limited to its own KV subtree, its PKI mount and its database-engine mount, and an AppRole
# bound to that policy. Every read or write of a tenant's secrets goes through `tenant_client(schema)`.
# Provisioning is idempotent and repeated on demand, so a dev server that lost its state (in-memory
# storage) is set up again by the next call.

_TENANT_MARGIN = 0.2  # drop a cached tenant token when less than this share of its TTL is left
_tenant_lock = threading.Lock()
_tenant_clients: dict[str, tuple[float, hvac.Client]] = {}


def _check_schema(schema_name: str) -> str:
    if not _SEGMENT.match(schema_name) or "." in schema_name:
        raise VaultError(f"Invalid Vault path segment {schema_name!r}.", reason="invalid")
    return schema_name


def tenant_policy_name(schema_name: str) -> str:
    """The name of the Vault policy (and AppRole) of a tenant: ``<prefix>-tenant-<schema>``."""
    return f"{settings.VAULT_KV_PREFIX}-tenant-{_check_schema(schema_name)}"


def database_mount(schema_name: str) -> str:
    """The mount path of a tenant's database secrets engine: ``<prefix>-db-<schema>``."""
    return f"{settings.VAULT_KV_PREFIX}-db-{_check_schema(schema_name)}"


def tenant_policy(schema_name: str) -> str:
    """The HCL of a tenant's policy: its KV subtree, its PKI mount, its database mount, nothing else."""
    kv, base = settings.VAULT_KV_MOUNT, f"{settings.VAULT_KV_PREFIX}/tenants/{_check_schema(schema_name)}"
    pki, db = pki_mount(schema_name), database_mount(schema_name)
    rules = [
        (f"{kv}/data/{base}/*", ["create", "read", "update", "patch"]),
        (f"{kv}/metadata/{base}/*", ["create", "read", "update", "delete", "list", "patch"]),
        (f"{kv}/delete/{base}/*", ["update"]),
        (f"{kv}/undelete/{base}/*", ["update"]),
        (f"{kv}/destroy/{base}/*", ["update"]),
        (f"{pki}/issue/*", ["create", "update"]),
        (f"{pki}/sign/*", ["create", "update"]),
        (f"{pki}/ca/pem", ["read"]),
        (f"{pki}/ca_chain", ["read"]),
        (f"{pki}/cert/*", ["read"]),
        (f"{db}/creds/*", ["read"]),
        (f"sys/leases/renew/{db}/creds/*", ["update"]),
        (f"sys/leases/revoke/{db}/creds/*", ["update"]),
    ]
    return "\n".join(f'path "{path}" {{\n  capabilities = {list(caps)!r}\n}}'.replace("'", '"') for path, caps in rules)


def _ensure_approle_mount() -> None:
    mount = settings.VAULT_APPROLE_MOUNT
    methods = _guard("list auth methods", lambda: client().sys.list_auth_methods())
    listed = methods.get("data", methods)
    if f"{mount}/" not in listed:
        _guard("enable the AppRole auth method", lambda: client().sys.enable_auth_method("approle", path=mount))


def ensure_tenant_access(schema_name: str) -> str:
    """Create or update a tenant's policy and AppRole with the platform credential; returns the role name.

    Idempotent: every step is an upsert, so it is safe after a restart that lost them, or to run twice."""
    name = tenant_policy_name(schema_name)
    _ensure_approle_mount()
    policy = tenant_policy(schema_name)
    _guard("write a tenant policy", lambda: client().sys.create_or_update_acl_policy(name=name, policy=policy))
    ttl = settings.VAULT_TENANT_TOKEN_TTL
    _guard(
        "write a tenant AppRole",
        lambda: client().auth.approle.create_or_update_approle(
            role_name=name,
            token_policies=[name],
            token_ttl=f"{ttl}s",
            token_max_ttl=f"{ttl}s",
            token_type="service",
            secret_id_num_uses=1,  # every login mints a fresh one-use secret id
            secret_id_ttl="60s",
            mount_point=settings.VAULT_APPROLE_MOUNT,
        ),
    )
    return name


def _login_tenant(schema_name: str, what: str) -> tuple[float, hvac.Client]:
    # Failures are reported as failures of what the caller wanted (`what`): the login is an internal step.
    name = tenant_policy_name(schema_name)
    mount = settings.VAULT_APPROLE_MOUNT

    def role_id() -> str:
        response = client().auth.approle.read_role_id(role_name=name, mount_point=mount)
        return response["data"]["role_id"]

    try:
        rid = _guard(what, role_id)
    except VaultError as exc:
        if exc.reason not in ("not_found", "invalid", "error"):
            raise
        ensure_tenant_access(schema_name)  # missing (first use, or the server lost its state): create it
        rid = _guard(what, role_id)
    secret = _guard(
        what,
        lambda: client().auth.approle.generate_secret_id(role_name=name, mount_point=mount)["data"]["secret_id"],
    )
    tenant = hvac.Client(url=settings.VAULT_ADDR, timeout=settings.VAULT_TIMEOUT, verify=settings.VAULT_CACERT or True)
    login = _guard(
        what,
        lambda: tenant.auth.approle.login(role_id=rid, secret_id=secret, mount_point=mount, use_token=True),
    )
    ttl = float(login["auth"]["lease_duration"] or settings.VAULT_TENANT_TOKEN_TTL)
    return time.monotonic() + ttl * (1 - _TENANT_MARGIN), tenant


def tenant_client(schema_name: str, what: str = "log in as the tenant") -> hvac.Client:
    """A client authenticated with the tenant's own AppRole (cached until shortly before its token expires)."""
    _check_schema(schema_name)
    hit = _tenant_clients.get(schema_name)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    fresh = _login_tenant(schema_name, what)
    with _tenant_lock:
        _tenant_clients[schema_name] = fresh
    return fresh[1]


def forget_tenant_clients(schema_name: str | None = None) -> None:
    """Drop cached tenant tokens (all, or one tenant's); the next call logs in again."""
    with _tenant_lock:
        if schema_name is None:
            _tenant_clients.clear()
        else:
            _tenant_clients.pop(schema_name, None)


def _as_tenant(schema_name: str, what: str, call: Callable[[hvac.Client], T]) -> T:
    """Run `call` with the tenant's client. A denial with a token that Vault no longer knows (expired, or the
    server restarted) logs in again once; a denial with a valid token is a real one and is raised."""
    tenant = tenant_client(schema_name, what)
    try:
        return _guard(what, lambda: call(tenant))
    except VaultError as exc:
        if exc.reason != "denied":
            raise
        try:
            tenant.auth.token.lookup_self()
            raise
        except (hvac_exc.Forbidden, hvac_exc.Unauthorized, hvac_exc.InvalidRequest):
            pass
        except requests.exceptions.RequestException:
            raise exc from None
    forget_tenant_clients(schema_name)
    tenant = tenant_client(schema_name, what)
    return _guard(what, lambda: call(tenant))


def _tenant_path(schema_name: str, path: str) -> str:
    """Refuse a path outside the tenant's subtree before Vault has to."""
    prefix = tenant_path(schema_name) + "/"
    if not path.startswith(prefix) or ".." in path.split("/"):
        raise VaultError("That Vault path does not belong to this tenant.", reason="denied")
    return path


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


# --- Database secrets engine (dynamic PostgreSQL credentials) ----------------------------------------------------


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


# --- PKI: each tenant's SPIFFE CA (workloads app; docs/spiffe.md) ------------------------------------------------
# The mount, its root CA and the "svid" role are platform duties (`client()`). Issuing and reading the CA use the
# tenant's own credentials (`_as_tenant`; its policy allows <mount>/issue/*, ca/pem, ca_chain, cert/*). Private
# keys returned by `pki_issue_svid` are handed to the caller only, never logged or stored here.

SVID_ROLE = "svid"


def _pki_role_params(trust_domain: str) -> dict[str, Any]:
    # py-spiffe rejects leaves without BasicConstraints (CA:FALSE) or with key usages beyond DigitalSignature.
    return {
        "allowed_uri_sans": [f"spiffe://{trust_domain}/*"],
        "allow_any_name": False,
        "allowed_domains": [],
        "allow_ip_sans": False,
        "allow_localhost": False,
        "enforce_hostnames": False,
        "require_cn": False,
        "basic_constraints_valid_for_non_ca": True,
        "key_usage": ["DigitalSignature"],
        "ext_key_usage": ["ServerAuth", "ClientAuth"],
        "key_type": "ec",
        "key_bits": 256,
        "ttl": f"{settings.SVID_DEFAULT_TTL}s",
        "max_ttl": f"{settings.SVID_MAX_TTL}s",
        "no_store": False,
    }


def pki_ensure(schema_name: str, trust_domain: str) -> bool:
    """With the platform credential: make sure the tenant's PKI mount, root CA and SVID role exist.

    Idempotent (returns True only when it generated the CA); called at tenant creation and again on first use
    (Vault was down then, or a dev server lost its in-memory state)."""
    mount = pki_mount(schema_name)
    mounts = _guard("list secrets engines", lambda: client().sys.list_mounted_secrets_engines())
    if f"{mount}/" not in mounts.get("data", mounts):
        _guard(
            "mount the tenant's PKI engine",
            lambda: client().sys.enable_secrets_engine(
                "pki",
                path=mount,
                description=f"SPIFFE CA of trust domain {trust_domain}",
                config={"max_lease_ttl": f"{settings.SPIFFE_CA_TTL}s"},
            ),
        )
    created = False
    existing = _guard("read the tenant's CA", lambda: client().secrets.pki.read_ca_certificate(mount_point=mount))
    if not str(existing or "").strip():
        _guard(
            "generate the tenant's root CA",
            lambda: client().secrets.pki.generate_root(
                type="internal",
                common_name=f"{trust_domain} SPIFFE CA",
                extra_params={
                    "ttl": f"{settings.SPIFFE_CA_TTL}s",
                    "uri_sans": f"spiffe://{trust_domain}",
                    "key_type": "ec",
                    "key_bits": 256,
                },
                mount_point=mount,
            ),
        )
        created = True
    params = _pki_role_params(trust_domain)
    try:
        current = _guard(
            "read the tenant's SVID role",
            lambda: client().secrets.pki.read_role(SVID_ROLE, mount_point=mount),
        )["data"]
    except VaultError as exc:
        if exc.reason != "not_found":
            raise
        current = None
    if current is not None and current.get("allowed_uri_sans") != params["allowed_uri_sans"]:
        # A mount keeps its trust domain for life: never widen a tenant's CA to another tenant's IDs.
        raise VaultError(
            f"The PKI mount {mount} issues IDs of another trust domain; refusing to change it to {trust_domain}.",
            reason="invalid",
        )
    _guard(
        "write the tenant's SVID role",
        lambda: client().secrets.pki.create_or_update_role(SVID_ROLE, extra_params=params, mount_point=mount),
    )
    return created


def _pki_first_use(exc: VaultError) -> bool:
    # A missing mount answers 404; a missing role 400 "unknown role". Any other refusal (e.g. a URI SAN the
    # role does not allow) is final and must not trigger provisioning.
    return exc.reason == "not_found" or (exc.reason == "invalid" and "unknown role" in str(exc))


def pki_ca_pem(schema_name: str, trust_domain: str) -> str:
    """The PEM of the tenant's CA (its trust bundle), read with the tenant's credentials; provisions the PKI
    first when it is missing."""
    mount = pki_mount(schema_name)

    def read() -> str:
        pem = _as_tenant(
            schema_name, "read the tenant's CA", lambda c: c.secrets.pki.read_ca_certificate(mount_point=mount)
        )
        return str(pem or "").strip()

    try:
        pem = read()
    except VaultError as exc:
        if not _pki_first_use(exc):
            raise
        pem = ""
    if not pem:
        pki_ensure(schema_name, trust_domain)
        pem = read()
    return pem


def pki_issue_svid(schema_name: str, trust_domain: str, spiffe_id: str, ttl_seconds: int) -> dict[str, Any]:
    """Issue one X.509-SVID for `spiffe_id` from the tenant's CA with the tenant's credentials:
    ``{certificate, ca_chain, private_key, serial_number, expiration}`` (PEM strings). Provisions on first use."""
    if not spiffe_id.startswith(f"spiffe://{trust_domain}/"):
        raise VaultError(f"{spiffe_id!r} is not in trust domain {trust_domain}.", reason="invalid")
    mount = pki_mount(schema_name)

    def issue() -> dict[str, Any]:
        return _as_tenant(
            schema_name,
            "issue an X.509-SVID",
            lambda c: c.secrets.pki.generate_certificate(
                SVID_ROLE,
                common_name="",
                extra_params={
                    "uri_sans": spiffe_id,
                    "ttl": f"{int(ttl_seconds)}s",
                    "exclude_cn_from_sans": True,
                    "format": "pem",
                    "private_key_format": "pkcs8",
                },
                mount_point=mount,
            ),
        )

    try:
        response = issue()
    except VaultError as exc:
        if not _pki_first_use(exc):
            raise
        pki_ensure(schema_name, trust_domain)
        response = issue()
    data = response["data"]
    return {
        "certificate": data["certificate"],
        "ca_chain": list(data.get("ca_chain") or [data["issuing_ca"]]),
        "private_key": data["private_key"],
        "serial_number": data["serial_number"],
        "expiration": int(data["expiration"]),
    }
