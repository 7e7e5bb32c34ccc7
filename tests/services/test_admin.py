"""The services dashboard: write-only secrets, version history without values, rotate now, permission matrix."""

from __future__ import annotations

import re
import socket

import pytest
from django.test import Client, override_settings

from audit.models import AuditEvent
from authsec_site.lib import vault
from services.models import SecretVersion, Service
from tenants.models import Tenant
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.matrix import PermissionMatrix
from tests.support.services import make_service, unique_secret, vault_value

pytestmark = pytest.mark.django_db
ADD = "/t/acme/admin/services/service/add/"


def _client(tenant: str, email: str, password: str = ADMIN_PASSWORD) -> Client:
    client = Client()
    response = client.post(f"/t/{tenant}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client


def _form(**overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "name": "GitHub API Integration",
        "service_type": "bearer_token",
        "auth_type": "bearer",
        "base_url": "https://api.github.com",
        "description": "",
        "metadata": "{}",
        "is_enabled": "on",
        "roles": "",
        "groups": "",
        "scopes": "read",
        "resources": "",
        "permissions": "",
        "rotation_policy": "none",
        "rotation_interval_days": "30",
        "rotation_kind": "none",
        "rotation_config": "{}",
        "keep_versions": "10",
    }
    form.update(overrides)
    return form


@pytest.fixture
def admin_client(in_acme: Tenant) -> Client:
    return _client("acme", "admin@acme.test")


def test_add_stores_the_secret_in_vault_only_and_never_renders_it(admin_client: Client) -> None:
    token = unique_secret("ghp")
    response = admin_client.post(ADD, _form(access_token=token))
    assert response.status_code == 302, response.content.decode()[:3000]
    service = Service.objects.get(name="GitHub API Integration")
    assert service.vault_version == 1 and service.status == "active"
    assert re.fullmatch(rf"authsec/tenants/tenant_acme/services/{service.pk}-[0-9a-f]{{16}}", service.vault_path)
    assert vault_value(service) == ({"access_token": token}, 1)
    page = admin_client.get(f"/t/acme/admin/services/service/{service.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert token not in html
    assert re.search(r'<input type="password" name="access_token"[^>]*>', html)
    assert 'name="access_token" value' not in html
    assert "v1" in html and "admin@acme.test" in html and "Created" in html
    listing = admin_client.get("/t/acme/admin/services/service/").content.decode()
    assert token not in listing
    for event in AuditEvent.objects.filter(target_type="services.service", target_id=str(service.pk)):
        assert token not in str(event.data)


def test_replace_secret_writes_a_new_version_and_blank_keeps_the_current_one(admin_client: Client) -> None:
    first, second = unique_secret("ghp"), unique_secret("ghp")
    service = make_service({"access_token": first}, name="GitHub API Integration")
    change = f"/t/acme/admin/services/service/{service.pk}/change/"
    assert admin_client.post(change, _form(description="no secret change")).status_code == 302
    service.refresh_from_db()
    assert service.vault_version == 1 and service.description == "no secret change"
    assert admin_client.post(change, _form(access_token=second)).status_code == 302
    service.refresh_from_db()
    assert service.vault_version == 2
    assert vault_value(service) == ({"access_token": second}, 2)
    assert vault_value(service, 1) == ({"access_token": first}, 1)  # the old version is kept
    history = list(SecretVersion.objects.filter(service=service).values_list("version", "reason", "created_by"))
    assert history == [(2, "replaced", "admin@acme.test"), (1, "created", "tests")]
    html = admin_client.get(change).content.decode()
    assert first not in html and second not in html
    assert "<td>v2</td>" in html and "<td>v1</td>" in html


def test_a_credential_the_type_does_not_store_is_refused(admin_client: Client) -> None:
    response = admin_client.post(ADD, _form(refresh_token=unique_secret()))
    assert response.status_code == 200
    assert "A Bearer token service does not store this." in response.content.decode()
    assert not Service.objects.filter(name="GitHub API Integration").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vault_down_is_a_form_error_and_nothing_is_saved(admin_client: Client) -> None:
    token = unique_secret()
    with override_settings(VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TIMEOUT=1):
        vault.reset_client()
        response = admin_client.post(ADD, _form(access_token=token))
    vault.reset_client()
    html = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved." in html and "unreachable" in html
    assert token not in html
    assert not Service.objects.filter(name="GitHub API Integration").exists()


def test_rotate_now_action_makes_a_new_version(admin_client: Client) -> None:
    first = unique_secret()
    service = make_service(
        {"api_key": first}, service_type="api_key", rotation_kind="generated", rotation_config={"length": 32}
    )
    response = admin_client.post(
        "/t/acme/admin/services/service/", {"action": "rotate_now", "_selected_action": [service.pk]}, follow=True
    )
    assert f"Rotated {service.name} to version 2." in response.content.decode()
    data, version = vault_value(service)
    assert version == 2 and data["api_key"] != first and len(data["api_key"]) == 32
    assert data["api_key"] not in response.content.decode()


def test_failed_rotation_shows_rotation_failed_in_the_list(admin_client: Client) -> None:
    service = make_service(
        {"access_token": unique_secret()},
        service_type="oauth2",
        rotation_kind="oauth2_refresh",
        rotation_config={"token_url": "http://127.0.0.1:9/token"},
    )
    response = admin_client.post(
        "/t/acme/admin/services/service/", {"action": "rotate_now", "_selected_action": [service.pk]}, follow=True
    )
    html = response.content.decode()
    assert "No refresh token is stored for this service" in html
    assert "rotation failed" in html
    service.refresh_from_db()
    assert service.status == "rotation_failed" and service.vault_version == 1


def test_permission_matrix(in_acme: Tenant, globex: Tenant) -> None:
    service = make_service({"access_token": unique_secret()})
    matrix = PermissionMatrix.of(in_acme, globex, staff_email="svc-staff@acme.test")
    matrix.check(
        f"/t/acme/admin/services/service/{service.pk}/change/",
        ["services.view_service"],
        # Another tenant's admin: the acme row does not exist in globex's schema.
        other_url=f"/t/globex/admin/services/service/{service.pk}/change/",
    )
    # View only: no rotate action offered, and posting it changes nothing.
    changelist = matrix.staff.get("/t/acme/admin/services/service/").content.decode()
    assert "rotate_now" not in changelist
    response = matrix.staff.post(
        "/t/acme/admin/services/service/", {"action": "rotate_now", "_selected_action": [service.pk]}
    )
    service.refresh_from_db()
    assert service.vault_version == 1 and response.status_code in (200, 302)


def test_a_change_is_one_event_with_before_and_after(admin_client: Client) -> None:
    service = make_service(
        {"access_token": unique_secret()}, name="GitHub API Integration", base_url="https://api.github.com"
    )
    change = f"/t/acme/admin/services/service/{service.pk}/change/"
    assert admin_client.post(change, _form(description="now described")).status_code == 302
    [event] = AuditEvent.objects.filter(action="service.changed", target_id=str(service.pk))
    assert (event.actor_label, event.data["service"]) == ("admin@acme.test", "GitHub API Integration")
    assert event.data["changes"] == {"description": {"before": "", "after": "now described"}}
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


def test_vault_failing_after_the_form_check_leaves_nothing_half_written(in_acme: Tenant) -> None:
    from services import services

    token = unique_secret()
    new = Service(name="Half written", service_type="bearer_token", auth_type="bearer", keep_versions=5)
    with override_settings(VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TIMEOUT=1):
        vault.reset_client()
        vault.forget_tenant_clients()
        try:
            with pytest.raises(vault.VaultError):
                services.save_service(new, actor="tests", credentials={"access_token": token})
        finally:
            vault.reset_client()
            vault.forget_tenant_clients()
    assert not Service.objects.filter(name="Half written").exists()
    assert not AuditEvent.objects.filter(action="service.created", data__service="Half written").exists()


def test_deleting_removes_the_vault_secret_after_commit(
    admin_client: Client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"access_token": unique_secret()})
    delete = f"/t/acme/admin/services/service/{service.pk}/delete/"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Service.objects.filter(pk=service.pk).exists()
    assert vault_value(service)[1] == 1  # still in Vault until the transaction commits
    for callback in callbacks:
        callback()
    with pytest.raises(vault.VaultError):
        vault_value(service)
    [event] = AuditEvent.objects.filter(action="service.deleted", target_id=str(service.pk))
    assert (event.actor_label, event.data["service"], event.data["after"]) == ("admin@acme.test", service.name, None)
