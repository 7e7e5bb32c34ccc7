"""Per-tenant credentials (least privilege): each tenant's policy and AppRole, and its cached client.

The platform credential (VAULT_TOKEN or the platform AppRole) only *mints* tenant credentials: each tenant
has a policy limited to its own KV subtree, its PKI mount and its database-engine mount, and an AppRole
bound to that policy. Every read or write of a tenant's secrets goes through `tenant_client(schema)`.
Provisioning is idempotent and repeated on demand, so a dev server that lost its state (in-memory
storage) is set up again by the next call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import hvac
import requests
from django.conf import settings
from hvac import exceptions as hvac_exc

from authsec_site.lib.vault.client import VaultError, _guard, client, forget_platform_client
from authsec_site.lib.vault.paths import _check_schema, database_mount, pki_mount, tenant_policy_name

T = TypeVar("T")
_TENANT_MARGIN = 0.2  # drop a cached tenant token when less than this share of its TTL is left
_tenant_lock = threading.Lock()
_tenant_clients: dict[str, tuple[float, hvac.Client]] = {}


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


def reset_client() -> None:
    """Forget the platform client and every cached tenant client (settings changed, or tests)."""
    forget_platform_client()
    forget_tenant_clients()


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
