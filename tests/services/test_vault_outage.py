"""OpenBao stopped in the middle of a rotation, and a dev server that restarts empty: no half state, and the
next run succeeds. Uses a throwaway OpenBao dev server of its own on a free port (started and killed here)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from audit.models import AuditEvent
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


def _settled_version(service: Service) -> int:
    """Vault's newest version of the secret once OpenBao, just resumed, has worked off the requests it took while
    stopped (the same figure twice, 0.2 s apart)."""
    seen = -1
    for _ in range(50):
        now = vault.tenant_kv_current_version("tenant_acme", service.vault_path)
        if now == seen:
            return now
        seen = now
        time.sleep(0.2)
    raise AssertionError("OpenBao's version of the secret did not settle")


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
    # OpenBao took the write before it stopped and may apply it once resumed, after the client gave up: Postgres
    # still points at version 1, and version 1 is what every reader gets.
    stray = _settled_version(service)
    assert stray in (1, 2)
    assert vault_value(service, 1) == ({"api_key": first}, 1)
    assert read_credentials(session_for(demo_users["alice"]), service.name)["credentials"] == {"api_key": first}
    # The next run (OpenBao back) succeeds, and destroys the version that was never committed, if it landed.
    result = services.rotate_service(actor="tests", service_id=service.pk, force=True)
    service.refresh_from_db()
    assert result.version == stray + 1 == service.vault_version and service.status == "active"
    assert vault_value(service)[0]["api_key"] != first
    if stray == 2:
        with pytest.raises(vault.VaultError):
            vault_value(service, 2)
    event = AuditEvent.objects.filter(action="service.secret_rotated", data__service=service.name).get()
    assert event.data.get("discarded_versions", []) == list(range(2, stray + 1))


def test_a_version_written_but_never_committed_is_destroyed_by_the_next_rotation(demo_users) -> None:  # type: ignore[no-untyped-def]
    """The lost-answer case made certain: Vault holds a version 2 that Postgres never recorded."""
    first = unique_secret()
    service = make_service({"api_key": first}, service_type="api_key", rotation_kind="generated")
    vault.tenant_kv_write("tenant_acme", service.vault_path, {"api_key": "never-committed"}, cas=1)
    assert read_credentials(session_for(demo_users["alice"]), service.name)["credentials"] == {"api_key": first}
    result = services.rotate_service(actor="tests", service_id=service.pk, force=True)
    service.refresh_from_db()
    assert result.version == 3 == service.vault_version
    assert vault_value(service, 1) == ({"api_key": first}, 1)
    with pytest.raises(vault.VaultError):
        vault_value(service, 2)
    assert vault_value(service)[0]["api_key"] not in (first, "never-committed")
    event = AuditEvent.objects.filter(action="service.secret_rotated", data__service=service.name).get()
    assert event.data["discarded_versions"] == [2]
    # A secret replaced by an admin over a stray version does the same.
    vault.tenant_kv_write("tenant_acme", service.vault_path, {"api_key": "stray-again"}, cas=3)
    assert services.replace_secret(actor="tests", service=service, credentials={"api_key": "from-admin"}) == 5
    with pytest.raises(vault.VaultError):
        vault_value(service, 4)
    assert vault_value(service) == ({"api_key": "from-admin"}, 5)


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
