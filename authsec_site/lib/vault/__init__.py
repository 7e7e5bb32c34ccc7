"""The one door to Vault (OpenBao): the only package that imports hvac.

Everything else asks this package for secrets by tenant and name, through the names re-exported here
(`from authsec_site.lib import vault`; `vault.kv_read`, `vault.tenant_client`, …). Failures surface as
`VaultError`, whose message says what went wrong (unreachable, sealed, permission denied, not found) and
never contains a token or a secret value.

- `client`: the platform's hvac client, `_guard` (every failure → `VaultError`), health;
- `paths`: where a tenant's things live (KV subtree, PKI and database mounts, policy name);
- `approle`: each tenant's policy and AppRole, its cached client, `reset_client`;
- `kv`: KV v2 secrets, the platform's and each tenant's;
- `database`: the database secrets engine (dynamic PostgreSQL credentials, leases);
- `pki`: each tenant's SPIFFE CA.

Modules depend only downward in that list (`kv`, `database` and `pki` on `approle`, it on `paths` and
`client`).
"""

from django.conf import settings

from authsec_site.lib.vault.approle import (
    ensure_tenant_access,
    forget_tenant_clients,
    reset_client,
    tenant_client,
    tenant_policy,
)
from authsec_site.lib.vault.client import VaultError, client, health, token_is_valid
from authsec_site.lib.vault.database import configure_database, database_credentials, renew_lease, revoke_lease
from authsec_site.lib.vault.kv import (
    kv_delete_all,
    kv_read,
    kv_write,
    tenant_kv_configure,
    tenant_kv_current_version,
    tenant_kv_delete_all,
    tenant_kv_destroy_versions,
    tenant_kv_read,
    tenant_kv_write,
)
from authsec_site.lib.vault.paths import database_mount, pki_mount, tenant_path, tenant_policy_name
from authsec_site.lib.vault.pki import SVID_ROLE, pki_ca_pem, pki_ensure, pki_issue_svid

__all__ = [
    "SVID_ROLE",
    "VaultError",
    "client",
    "configure_database",
    "database_credentials",
    "database_mount",
    "ensure_tenant_access",
    "forget_tenant_clients",
    "health",
    "kv_delete_all",
    "kv_read",
    "kv_write",
    "pki_ca_pem",
    "pki_ensure",
    "pki_issue_svid",
    "pki_mount",
    "renew_lease",
    "reset_client",
    "revoke_lease",
    "settings",
    "tenant_client",
    "tenant_kv_configure",
    "tenant_kv_current_version",
    "tenant_kv_delete_all",
    "tenant_kv_destroy_versions",
    "tenant_kv_read",
    "tenant_kv_write",
    "tenant_path",
    "tenant_policy",
    "tenant_policy_name",
    "token_is_valid",
]
