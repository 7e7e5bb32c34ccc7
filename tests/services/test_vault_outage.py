"""OpenBao stopped in the middle of a rotation, and a dev server that restarts empty: no half state, and the
next run succeeds. Uses a throwaway OpenBao dev server of its own on a free port (started and killed here)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from authsec_site.lib import vault
from services import rotators, services
from services.models import Service
from services.sdk import ServiceUnavailable, drop_cached, read_credentials
from tests.support.bao import ROOT, DevBao
from tests.support.services import make_service, session_for, unique_secret, vault_value

pytestmark = pytest.mark.django_db


@pytest.fixture
def bao(settings, tmp_path: Path) -> Iterator[DevBao]:  # type: ignore[no-untyped-def]
    server = DevBao(tmp_path / "bao.log", secrets.token_urlsafe(24))
    server.start()
    settings.VAULT_ADDR = server.addr
    settings.VAULT_TOKEN = server.token
    settings.VAULT_TIMEOUT = 1
    vault.reset_client()
    drop_cached("tenant_acme")
    try:
        yield server
    finally:
        server.stop()
        vault.reset_client()
        drop_cached("tenant_acme")


class _PausesVault:
    """The generated rotator, except that OpenBao stops right after the new value is made."""

    def __init__(self, bao: DevBao) -> None:
        self.bao, self.inner = bao, rotators.GeneratedSecretRotator()

    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]:
        new = self.inner.rotate(service, current)
        self.bao.pause()
        return new

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None:
        raise AssertionError("nothing may be committed")


def test_vault_stopped_mid_rotation_leaves_no_half_state(bao: DevBao, demo_users) -> None:  # type: ignore[no-untyped-def]
    first = unique_secret()
    service = make_service({"api_key": first}, service_type="api_key", rotation_kind="generated")
    previous = rotators.register_rotator("generated", _PausesVault(bao))
    try:
        with pytest.raises(services.RotationError, match="unreachable|did not answer"):
            services.rotate_service(actor="tests", service_id=service.pk, force=True)
    finally:
        rotators.register_rotator("generated", previous)
        bao.resume()
    service.refresh_from_db()
    assert service.vault_version == 1 and service.status == "rotation_failed"
    assert vault_value(service) == ({"api_key": first}, 1)  # Vault has no version 2, Postgres points at 1
    assert read_credentials(session_for(demo_users["alice"]), service.name)["credentials"] == {"api_key": first}
    # The next run (OpenBao back) succeeds.
    result = services.rotate_service(actor="tests", service_id=service.pk, force=True)
    service.refresh_from_db()
    assert result.version == 2 == service.vault_version and service.status == "active"
    assert vault_value(service)[0]["api_key"] != first


def test_reads_while_vault_is_stopped_fail_clearly_then_recover(bao: DevBao, demo_users) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"access_token": unique_secret()})
    drop_cached("tenant_acme")
    bao.pause()
    try:
        with pytest.raises(ServiceUnavailable):
            read_credentials(session_for(demo_users["alice"]), service.name)
    finally:
        bao.resume()
    assert read_credentials(session_for(demo_users["alice"]), service.name)["service_name"] == service.name


def test_a_restarted_empty_dev_server_is_provisioned_again_on_demand(bao: DevBao, demo_users) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"api_key": unique_secret()}, service_type="api_key", rotation_kind="generated")
    stale_token = vault.tenant_client("tenant_acme").token
    bao.restart()  # in-memory: policies, AppRoles, tokens and secrets are gone
    platform = hvac.Client(url=bao.addr, token=bao.token)
    assert vault.tenant_policy_name("tenant_acme") not in platform.sys.list_acl_policies()["data"]["keys"]
    result = services.rotate_service(actor="tests", service_id=service.pk, force=True)
    service.refresh_from_db()
    assert result.rotated and service.status == "active"
    assert vault.tenant_client("tenant_acme").token != stale_token
    assert vault.tenant_policy_name("tenant_acme") in platform.sys.list_acl_policies()["data"]["keys"]
    data = read_credentials(session_for(demo_users["alice"]), service.name)
    assert data["credentials"] == vault_value(service)[0]


def test_the_platform_policy_in_the_readme_is_enough_and_cannot_read_tenant_secrets(bao: DevBao, settings) -> None:  # type: ignore[no-untyped-def]
    """Production set-up as documented: the platform logs in with an AppRole limited to minting tenant access."""
    import re

    readme = (ROOT / "README.md").read_text()
    policy = re.search(r"```hcl\n(# manage the per-tenant.*?)```", readme, re.S)
    assert policy, "the README's production policy block is missing"
    root = hvac.Client(url=bao.addr, token=bao.token)
    root.sys.enable_auth_method("approle")
    root.sys.create_or_update_acl_policy(name="authsec-platform", policy=policy.group(1))
    root.auth.approle.create_or_update_approle("authsec-platform", token_policies=["authsec-platform"])
    settings.VAULT_TOKEN = ""
    settings.VAULT_ROLE_ID = root.auth.approle.read_role_id("authsec-platform")["data"]["role_id"]
    settings.VAULT_SECRET_ID = root.auth.approle.generate_secret_id("authsec-platform")["data"]["secret_id"]
    vault.reset_client()
    assert vault.ensure_tenant_access("tenant_acme") == "authsec-tenant-tenant_acme"
    path = vault.tenant_path("tenant_acme", "services", "prod-check")
    value = unique_secret()
    assert vault.tenant_kv_write("tenant_acme", path, {"api_key": value}, cas=0) == 1
    assert vault.kv_read(path) == ({"api_key": value}, 1)
    vault.client().sys.enable_secrets_engine("database", path=vault.database_mount("tenant_acme"))
    with pytest.raises(hvac.exceptions.Forbidden):  # the platform credential itself cannot read the secret
        vault.client().secrets.kv.v2.read_secret_version(
            path=path, mount_point=settings.VAULT_KV_MOUNT, raise_on_deleted_version=True
        )
