"""The Vault door against a real OpenBao: round trips, tenant paths, and clear errors."""

from __future__ import annotations

import socket
import uuid

import pytest
from django.test import override_settings

from authsec_site.lib import vault


@pytest.fixture(autouse=True)
def _fresh_client():  # type: ignore[no-untyped-def]
    vault.reset_client()
    yield
    vault.reset_client()


def test_writes_reads_versions_and_deletes_a_tenant_secret() -> None:
    path = vault.tenant_path("tenant_acme", "tests", uuid.uuid4().hex)
    assert vault.kv_write(path, {"access_token": "v1"}) == 1
    assert vault.kv_write(path, {"access_token": "v2"}) == 2
    assert vault.kv_read(path) == ({"access_token": "v2"}, 2)
    assert vault.kv_read(path, version=1) == ({"access_token": "v1"}, 1)
    vault.kv_delete_all(path)
    with pytest.raises(vault.VaultError) as excinfo:
        vault.kv_read(path)
    assert excinfo.value.reason == "not_found"


def test_tenant_paths_are_namespaced_and_cannot_escape() -> None:
    assert vault.tenant_path("tenant_acme", "services", "github") == "authsec/tenants/tenant_acme/services/github"
    for bad in ("..", "a/b", "", "../tenant_globex", ".hidden"):
        with pytest.raises(vault.VaultError, match="Invalid Vault path segment"):
            vault.tenant_path("tenant_acme", bad)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_vault_gives_the_clear_error() -> None:
    addr = f"http://127.0.0.1:{_closed_port()}"
    with override_settings(VAULT_ADDR=addr, VAULT_TIMEOUT=2):
        vault.reset_client()
        with pytest.raises(vault.VaultError) as excinfo:
            vault.kv_read("authsec/tenants/tenant_acme/x")
    assert excinfo.value.reason == "unreachable"
    assert str(excinfo.value) == f"Vault at {addr} is unreachable (could not read a secret)."


def test_rejected_token_gives_a_permission_error_without_the_token() -> None:
    bad_token = "s.not-a-real-token-" + uuid.uuid4().hex
    with override_settings(VAULT_TOKEN=bad_token):
        vault.reset_client()
        with pytest.raises(vault.VaultError) as excinfo:
            vault.kv_read("authsec/tenants/tenant_acme/x")
    assert excinfo.value.reason == "denied"
    assert "denied permission" in str(excinfo.value)
    assert bad_token not in str(excinfo.value)


def test_missing_credentials_are_reported() -> None:
    with override_settings(VAULT_TOKEN="", VAULT_ROLE_ID="", VAULT_SECRET_ID=""):
        vault.reset_client()
        with pytest.raises(vault.VaultError, match="No Vault credentials configured"):
            vault.client()


def test_health_reports_an_unsealed_server() -> None:
    assert vault.health()["sealed"] is False
