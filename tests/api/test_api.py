"""The RBAC management API: permission matrix of every endpoint, tenant isolation, 404s; shared test helpers."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tests.factories import (
    UserFactory,
)
from tests.support.api import client_for, grant_perms, login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

# endpoint -> the model whose Django permissions guard it
ENDPOINTS = {
    "applications": "rbac.application",
    "roles": "rbac.role",
    "groups": "rbac.group",
    "scopes": "rbac.scope",
    "resources": "rbac.resource",
    "permissions": "rbac.permission",
    "tool-policies": "rbac.toolpolicy",
    "role-bindings": "rbac.rolebinding",
    "group-memberships": "rbac.groupmembership",
    "users": "accounts.user",
}


# --- permission matrix -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_is_refused(endpoint: str, rbac_data: dict[str, Any]) -> None:
    client = Client()
    # 401 with a Bearer challenge: the API also takes OAuth bearer tokens.
    for url in (f"/t/acme/api/{endpoint}/", f"/t/acme/api/{endpoint}/{rbac_data['ids'][endpoint]}/"):
        response = client.get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_non_staff_user_is_refused(endpoint: str, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="plain@acme.test")
        grant_perms(user, ENDPOINTS[endpoint].replace(".", ".view_"))  # even with the model permission
    response = client_for(acme, user).get(f"/t/acme/api/{endpoint}/")
    assert response.status_code == 403
    assert response.json() == {"detail": "The management API is for staff of this tenant."}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_staff_without_model_permission_is_refused(endpoint: str, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        staff = UserFactory(email="staff@acme.test", is_staff=True)
    assert client_for(acme, staff).get(f"/t/acme/api/{endpoint}/").status_code == 403


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_staff_with_view_permission_reads_but_cannot_write(
    endpoint: str, acme: Tenant, rbac_data: dict[str, Any]
) -> None:
    with schema_context(acme.schema_name):
        staff = UserFactory(email="viewer@acme.test", is_staff=True)
        grant_perms(staff, ENDPOINTS[endpoint].replace(".", ".view_"))
    client = client_for(acme, staff)
    assert client.get(f"/t/acme/api/{endpoint}/").status_code == 200
    assert client.get(f"/t/acme/api/{endpoint}/{rbac_data['ids'][endpoint]}/").status_code == 200
    assert client.post(f"/t/acme/api/{endpoint}/", {}, content_type="application/json").status_code in (403, 405)
    assert client.delete(f"/t/acme/api/{endpoint}/{rbac_data['ids'][endpoint]}/").status_code in (403, 405)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_superuser_reads_every_endpoint(endpoint: str, admin: Client, rbac_data: dict[str, Any]) -> None:
    response = admin.get(f"/t/acme/api/{endpoint}/")
    assert response.status_code == 200
    assert response.json()["count"] >= 1
    assert admin.get(f"/t/acme/api/{endpoint}/{rbac_data['ids'][endpoint]}/").status_code == 200


def test_staff_with_add_permission_creates(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        staff = UserFactory(email="editor@acme.test", is_staff=True)
        grant_perms(staff, "rbac.add_scope")
    response = client_for(acme, staff).post("/t/acme/api/scopes/", {"name": "deploy"}, content_type="application/json")
    assert response.status_code == 201


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_acme_object_is_not_found_in_globex(endpoint: str, rbac_data: dict[str, Any], globex: Tenant) -> None:
    globex_admin = login("globex", "admin@globex.test")
    object_id = rbac_data["ids"][endpoint]
    with schema_context(globex.schema_name):  # make sure the id is not taken by a globex row by chance
        assert not apps.get_model(ENDPOINTS[endpoint]).objects.filter(pk=object_id).exists()
    response = globex_admin.get(f"/t/globex/api/{endpoint}/{object_id}/")
    assert response.status_code == 404
    assert response.json()["detail"].endswith("matches the given query.")
    if endpoint != "users":  # read-only
        assert globex_admin.delete(f"/t/globex/api/{endpoint}/{object_id}/").status_code == 404


def test_acme_session_is_not_a_session_at_globex_api(admin: Client) -> None:
    assert admin.get("/t/globex/api/roles/").status_code == 401  # anonymous there


def test_unknown_and_malformed_ids_are_404_json(admin: Client) -> None:
    for url in ("/t/acme/api/roles/999999/", "/t/acme/api/roles/abc/"):
        response = admin.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert "detail" in response.json()


def test_api_root_lists_the_endpoints(admin: Client) -> None:
    body = admin.get("/t/acme/api/").json()
    assert body["tool-policies"].endswith("/t/acme/api/tool-policies/")
    assert set(ENDPOINTS) <= set(body)


# --- users ---------------------------------------------------------------------------------------------------------


def test_users_are_listed_read_only(admin: Client, rbac_data: dict[str, Any]) -> None:
    listed = admin.get("/t/acme/api/users/?search=alice").json()["results"]
    assert listed == [
        {"id": rbac_data["ids"]["users"], "email": "alice@acme.test", "full_name": "Alice Example", "is_active": True}
    ]
    assert admin.post("/t/acme/api/users/", {"email": "x@acme.test"}).status_code == 405
    assert admin.delete(f"/t/acme/api/users/{rbac_data['ids']['users']}/").status_code == 405
