"""Least privilege in Vault: each tenant has its own policy and AppRole, and its credentials reach only its paths."""

from __future__ import annotations

import uuid

import hvac
import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from authsec_site.lib import vault
from tenants.services import create_tenant

pytestmark = pytest.mark.django_db


def _platform() -> hvac.Client:
    return vault.client()


def test_acme_credentials_get_403_on_globex_paths(acme, globex) -> None:  # type: ignore[no-untyped-def]
    globex_path = vault.tenant_path("tenant_globex", "services", uuid.uuid4().hex)
    vault.tenant_kv_write("tenant_globex", globex_path, {"access_token": "globex-only"})
    acme_client = vault.tenant_client("tenant_acme")
    assert acme_client.token != settings.VAULT_TOKEN
    attempts = [
        lambda: acme_client.secrets.kv.v2.read_secret_version(path=globex_path, mount_point=settings.VAULT_KV_MOUNT),
        lambda: acme_client.secrets.kv.v2.create_or_update_secret(
            path=globex_path, secret={"x": "y"}, mount_point=settings.VAULT_KV_MOUNT
        ),
        lambda: acme_client.secrets.kv.v2.read_secret_metadata(path=globex_path, mount_point=settings.VAULT_KV_MOUNT),
        # (a PKI mount's ca/pem and cert/* are public by design; issuing and signing are not)
        lambda: acme_client.write(f"{vault.pki_mount('tenant_globex')}/sign/svid", csr="x"),
        lambda: acme_client.write(f"{vault.pki_mount('tenant_globex')}/issue/svid", common_name="x"),
        lambda: acme_client.read(f"{vault.database_mount('tenant_globex')}/creds/any"),
        lambda: acme_client.read("sys/policies/acl/" + vault.tenant_policy_name("tenant_globex")),
        lambda: acme_client.auth.approle.generate_secret_id(
            vault.tenant_policy_name("tenant_globex"), mount_point=settings.VAULT_APPROLE_MOUNT
        ),
    ]
    for attempt in attempts:
        with pytest.raises(hvac.exceptions.Forbidden):
            attempt()
    # Through the one Vault door the same attempt is a clear "denied", not a fallback to the platform token.
    with pytest.raises(vault.VaultError) as excinfo:
        vault.tenant_kv_read("tenant_acme", globex_path)
    assert excinfo.value.reason == "denied"
    # …while acme's own subtree works with acme's credentials.
    own = vault.tenant_path("tenant_acme", "services", uuid.uuid4().hex)
    assert vault.tenant_kv_write("tenant_acme", own, {"access_token": "acme"}) == 1
    assert acme_client.secrets.kv.v2.read_secret_version(path=own, mount_point=settings.VAULT_KV_MOUNT)["data"][
        "data"
    ] == {"access_token": "acme"}


def test_tenant_token_carries_only_its_own_policy() -> None:
    token = vault.tenant_client("tenant_acme").auth.token.lookup_self()["data"]
    assert sorted(token["policies"]) == ["authsec-tenant-tenant_acme", "default"]
    assert 0 < token["ttl"] <= settings.VAULT_TENANT_TOKEN_TTL
    policy = _platform().sys.read_acl_policy("authsec-tenant-tenant_acme")["data"]["policy"]
    assert "tenant_globex" not in policy
    assert 'path "secret/data/authsec/tenants/tenant_acme/*"' in policy
    assert f'path "{vault.pki_mount("tenant_acme")}/issue/*"' in policy


def test_tenant_client_is_cached_until_near_its_ttl() -> None:
    first = vault.tenant_client("tenant_acme")
    assert vault.tenant_client("tenant_acme") is first
    vault.forget_tenant_clients("tenant_acme")
    assert vault.tenant_client("tenant_acme") is not first


def test_provisioning_is_idempotent() -> None:
    name = vault.ensure_tenant_access("tenant_acme")
    role_id = _platform().auth.approle.read_role_id(name, mount_point=settings.VAULT_APPROLE_MOUNT)["data"]["role_id"]
    assert vault.ensure_tenant_access("tenant_acme") == name
    again = _platform().auth.approle.read_role_id(name, mount_point=settings.VAULT_APPROLE_MOUNT)["data"]["role_id"]
    assert again == role_id


def test_lost_credentials_are_recreated_on_demand() -> None:
    """What a restarted dev server looks like: policy and AppRole gone, the cached token revoked."""
    path = vault.tenant_path("tenant_acme", "services", uuid.uuid4().hex)
    vault.tenant_kv_write("tenant_acme", path, {"v": "1"})
    stale = vault.tenant_client("tenant_acme")
    name = vault.tenant_policy_name("tenant_acme")
    _platform().auth.token.revoke(stale.token)
    _platform().auth.approle.delete_role(name, mount_point=settings.VAULT_APPROLE_MOUNT)
    _platform().sys.delete_policy(name)
    assert vault.tenant_kv_read("tenant_acme", path) == ({"v": "1"}, 1)
    assert vault.tenant_client("tenant_acme") is not stale
    assert "tenant_acme" in _platform().sys.read_acl_policy(name)["data"]["policy"]


def test_creating_a_tenant_provisions_its_policy_and_approle(db, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    slug = f"svc{uuid.uuid4().hex[:8]}"
    with django_capture_on_commit_callbacks(execute=True):
        created = create_tenant(actor="tests", slug=slug, name="Services test", admin_email=f"admin@{slug}.test")
    name = vault.tenant_policy_name(created.tenant.schema_name)
    try:
        assert created.tenant.schema_name in _platform().sys.read_acl_policy(name)["data"]["policy"]
        assert _platform().auth.approle.read_role(name, mount_point=settings.VAULT_APPROLE_MOUNT)["data"][
            "token_policies"
        ] == [name]
        with schema_context(created.tenant.schema_name):
            assert vault.tenant_client(created.tenant.schema_name).auth.token.lookup_self()["data"]["policies"]
    finally:
        _platform().auth.approle.delete_role(name, mount_point=settings.VAULT_APPROLE_MOUNT)
        _platform().sys.delete_policy(name)


def test_paths_outside_the_tenant_are_refused_before_vault() -> None:
    with pytest.raises(vault.VaultError, match="does not belong to this tenant"):
        vault.tenant_kv_read("tenant_acme", vault.tenant_path("tenant_globex", "x"))
    with pytest.raises(vault.VaultError, match="Invalid Vault path segment"):
        vault.tenant_client("../tenant_globex")
    with pytest.raises(vault.VaultError, match="does not belong"):
        vault.revoke_lease("tenant_acme", f"{vault.database_mount('tenant_globex')}/creds/x/abc")


def test_oauth_tenant_paths_go_through_tenant_credentials() -> None:
    """`kv_read`/`kv_write` of a tenant path (signing keys, upstream secrets) use the tenant's own token."""
    path = vault.tenant_path("tenant_acme", "oauth", "tests", uuid.uuid4().hex)
    vault.kv_write(path, {"private_key_pem": "x"})
    name = vault.tenant_policy_name("tenant_acme")
    _platform().sys.delete_policy(name)  # the tenant token can no longer do anything…
    vault.forget_tenant_clients()
    try:
        vault.reset_client()
        # …so a read that succeeds proves the policy was put back, i.e. the tenant token was used.
        vault.tenant_client("tenant_acme")  # logs in with the role still present but its policy missing
        with pytest.raises(vault.VaultError) as excinfo:
            vault.kv_read(path)
        assert excinfo.value.reason == "denied"
    finally:
        vault.ensure_tenant_access("tenant_acme")
    assert vault.kv_read(path) == ({"private_key_pem": "x"}, 1)
