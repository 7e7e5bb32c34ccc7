"""The dashboard for resource servers: registration shows the secret once, the pushed tools are listed, admins
map them (validated, audited, generation bumped), and only staff with the model permissions get in."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Permission as DjangoPermission
from django.test import Client

from audit.models import AuditEvent
from oauth.models import ResourceServer
from tests.factories import UserFactory
from tests.oauth_runtime.conftest import Registered, get_policy, put_manifest
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import AdminForm

pytestmark = pytest.mark.django_db
ADD_URL = "/t/acme/admin/oauth/resourceserver/add/"


def _login(email: str = "admin@acme.test", password: str = ADMIN_PASSWORD, tenant: str = "acme") -> Client:
    client = Client()
    response = client.post(f"/t/{tenant}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client


def _change_url(registered: Registered) -> str:
    return f"/t/acme/admin/oauth/resourceserver/{registered.server.pk}/change/"


def test_registering_shows_the_generated_secret_once(in_acme, scopes) -> None:  # type: ignore[no-untyped-def]
    admin = _login()
    form = AdminForm(admin.get(ADD_URL).content.decode())
    secret = form.values["introspection_client_secret"][0]
    assert len(secret) >= 40
    form.set("name", "Wiki MCP")
    form.set("resource_uri", "https://wiki.example.com/mcp")
    form.choose("scopes", "read")
    response = admin.post(ADD_URL, form.data())
    assert response.status_code == 302, response.content.decode()[-3000:]
    server = ResourceServer.objects.get(resource_uri="https://wiki.example.com/mcp")
    assert check_password(secret, server.client.client_secret)
    assert server.client.is_resource_server
    assert [scope.name for scope in server.scopes.all()] == ["read"]
    page = admin.get(f"/t/acme/admin/oauth/resourceserver/{server.pk}/change/").content.decode()
    assert secret not in page
    assert f"AUTHSEC_RESOURCE_SERVER_ID={server.pk}" in page
    assert AuditEvent.objects.filter(action="oauth.resource_server_created", target_id=str(server.pk)).exists()
    listing = admin.get("/t/acme/admin/oauth/resourceserver/").content.decode()
    assert "Wiki MCP" in listing and "needs_setup" in listing


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://wiki.example.com/mcp", "https"),
        ("https://wiki.example.com/mcp#x", "fragment"),
        ("https://wiki.example.com/mcp?a=1", "query"),
        ("wiki.example.com/mcp", "absolute URI"),
    ],
)
def test_registration_refuses_bad_resource_uris(in_acme, uri: str, message: str) -> None:  # type: ignore[no-untyped-def]
    admin = _login()
    form = AdminForm(admin.get(ADD_URL).content.decode())
    form.set("name", "Wiki")
    form.set("resource_uri", uri)
    response = admin.post(ADD_URL, form.data())
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ResourceServer.objects.filter(name="Wiki").exists()


def test_admin_maps_pushed_tools_and_the_policy_follows(registered: Registered) -> None:
    put_manifest(registered)
    admin = _login()
    page = admin.get(_change_url(registered)).content.decode()
    assert "read_notes" in page and "write_note" in page and "needs_setup" in page
    form = AdminForm(page)
    form.choose(f"{form.row_prefix('tools', 'read_notes')}-required_scopes", "read")
    form.check(f"{form.row_prefix('tools', 'write_note')}-is_public", True)
    response = admin.post(_change_url(registered), form.data())
    assert response.status_code == 302, response.content.decode()[-3000:]
    body = get_policy(registered).json()
    assert body["state"] == "ready"
    assert body["tool_policy"] == [
        {"name": "read_notes", "is_public": False, "required_scopes": ["read"]},
        {"name": "write_note", "is_public": True, "required_scopes": []},
    ]
    assert body["generation"] == 4  # one change per tool mapped, each its own generation and event
    events = AuditEvent.objects.filter(
        action="oauth.resource_server_policy_changed", target_id=str(registered.server.pk)
    ).order_by("seq")
    assert [(e.actor_label, e.data["tool"], e.data["generation"]) for e in events] == [
        ("admin@acme.test", "read_notes", 3),
        ("admin@acme.test", "write_note", 4),
    ]
    assert (events[0].data["is_public"], events[0].data["required_scopes"]) == (False, ["read"])
    assert (events[1].data["is_public"], events[1].data["required_scopes"]) == (True, [])
    assert events[1].data["tool_policy"] == body["tool_policy"]
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


def test_a_tool_cannot_be_public_and_scoped(registered: Registered) -> None:
    put_manifest(registered)
    admin = _login()
    form = AdminForm(admin.get(_change_url(registered)).content.decode())
    row = form.row_prefix("tools", "read_notes")
    form.choose(f"{row}-required_scopes", "read")
    form.check(f"{row}-is_public", True)
    response = admin.post(_change_url(registered), form.data())
    assert response.status_code == 200
    assert "A public tool needs no scopes" in response.content.decode()
    assert get_policy(registered).json()["generation"] == 2


def test_saving_without_changes_keeps_the_generation(registered: Registered) -> None:
    put_manifest(registered)
    admin = _login()
    form = AdminForm(admin.get(_change_url(registered)).content.decode())
    assert admin.post(_change_url(registered), form.data()).status_code == 302
    assert get_policy(registered).json()["generation"] == 2


def test_deleting_a_server_revokes_its_credentials(registered: Registered) -> None:
    admin = _login()
    url = f"/t/acme/admin/oauth/resourceserver/{registered.server.pk}/delete/"
    assert admin.post(url, {"post": "yes"}).status_code == 302
    assert not ResourceServer.objects.filter(pk=registered.server.pk).exists()
    assert get_policy(registered).status_code == 401
    assert AuditEvent.objects.filter(action="oauth.resource_server_deleted", target_id=str(registered.server.pk))


def test_permission_matrix(registered: Registered, globex) -> None:  # type: ignore[no-untyped-def]
    url = _change_url(registered)
    assert Client().get(url).status_code == 302  # anonymous: to the login page
    staff = UserFactory(email="staff@acme.test", is_staff=True)
    staff.set_password("staff-pass-123")
    staff.save()
    client = _login("staff@acme.test", "staff-pass-123")
    assert client.get(url).status_code == 403  # staff without the permission
    staff.user_permissions.add(DjangoPermission.objects.get(codename="view_resourceserver"))
    assert client.get(url).status_code == 200
    # globex's admin does not see acme's server
    other = _login("admin@globex.test", tenant="globex")
    assert other.get(url.replace("/t/acme/", "/t/globex/")).status_code in (302, 404)
