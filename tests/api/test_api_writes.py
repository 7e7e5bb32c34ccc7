"""The RBAC management API's writes: validation messages, audit events with before/after, writes through services."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from rbac.models import GroupMembership, Role, RoleBinding, ToolPolicy
from tenants.models import Tenant
from tests.factories import RoleFactory, UserFactory
from tests.support.api import events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


# --- roles ---------------------------------------------------------------------------------------------------------


def test_creates_role_with_grants_by_name_and_audits_it(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    response = admin.post(
        "/t/acme/api/roles/",
        {
            "name": "reader",
            "description": "Reads",
            "scopes": ["read"],
            "resources": ["projects"],
            "permissions": ["projects:read"],
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["scopes"], body["resources"], body["permissions"]) == (
        "reader",
        ["read"],
        ["projects"],
        ["projects:read"],
    )
    [event] = events(acme, "rbac.role_created")
    assert event.actor_label == "admin@acme.test"
    assert event.target_type == "rbac.role" and event.target_id == str(body["id"])
    assert event.data["before"] is None
    assert event.data["after"]["name"] == "reader"
    assert event.data["after"]["scopes"] == ["read"]
    assert event.data["after"]["permissions"] == ["projects:read"]


def test_updates_role_and_audits_before_and_after(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    role_id = rbac_data["ids"]["roles"]
    response = admin.patch(
        f"/t/acme/api/roles/{role_id}/",
        {"description": "Builds and ships", "scopes": [], "resources": ["projects"]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["scopes"] == [] and response.json()["resources"] == ["projects"]
    [event] = events(acme, "rbac.role_changed")
    assert event.data["before"]["description"] == "Builds things"
    assert event.data["before"]["scopes"] == ["read"]
    assert event.data["after"]["description"] == "Builds and ships"
    assert event.data["after"]["scopes"] == []
    assert event.data["after"]["resources"] == ["projects"]


def test_role_with_unknown_scope_is_400_with_field_message(admin: Client, rbac_data: dict[str, Any]) -> None:
    response = admin.post("/t/acme/api/roles/", {"name": "x", "scopes": ["Read"]}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"scopes": ["Unknown scope 'Read'."]}


def test_role_with_malformed_or_unknown_permission_is_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    bad = admin.post("/t/acme/api/roles/", {"name": "x", "permissions": ["projects"]}, content_type="application/json")
    assert bad.json() == {"permissions": ["A permission is written 'resource:action', got 'projects'."]}
    unknown = admin.post(
        "/t/acme/api/roles/", {"name": "x", "permissions": ["projects:write"]}, content_type="application/json"
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"permissions": ["Unknown permission 'projects:write'."]}


def test_duplicate_role_name_is_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    response = admin.post("/t/acme/api/roles/", {"name": "developer"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"name": ["role with this name already exists."]}


def test_invalid_role_name_is_400(admin: Client, acme: Tenant) -> None:
    response = admin.post("/t/acme/api/roles/", {"name": "has space"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["name"] == ["Use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit."]
    assert events(acme, "rbac.role_created") == []


def test_renaming_a_role_named_by_a_policy_is_refused(admin: Client, rbac_data: dict[str, Any]) -> None:
    response = admin.patch(
        f"/t/acme/api/roles/{rbac_data['ids']['roles']}/", {"name": "dev"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "name": ["Role 'developer' is named by the tool policies demo/hello; change those policies before renaming it."]
    }


def test_deleting_a_role_goes_through_the_service_and_audits_removed_bindings(
    admin: Client, rbac_data: dict[str, Any], acme: Tenant
) -> None:
    role_id = rbac_data["ids"]["roles"]
    assert admin.delete(f"/t/acme/api/roles/{role_id}/").status_code == 204
    with schema_context(acme.schema_name):
        assert not Role.objects.filter(pk=role_id).exists()
        assert not RoleBinding.objects.filter(role_id=role_id).exists()
    [event] = events(acme, "rbac.role_deleted", role_id)  # one event per change, whichever door it came through
    assert event.target_id == str(role_id)
    assert event.data["before"]["name"] == "developer"
    assert event.data["after"] is None
    assert event.data["bindings_removed"] == ["alice@acme.test"]


def test_lists_search_and_order(admin: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        for name in ("alpha", "beta", "gamma-dev"):
            RoleFactory(name=name, description="dev role" if name == "beta" else "")
    names = [r["name"] for r in admin.get("/t/acme/api/roles/?search=dev").json()["results"]]
    assert names == ["beta", "gamma-dev"]
    names = [r["name"] for r in admin.get("/t/acme/api/roles/?ordering=-name").json()["results"]]
    assert names == ["gamma-dev", "beta", "alpha"]
    page = admin.get("/t/acme/api/roles/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"].endswith("page=2&page_size=2")


# --- scopes, resources, permissions, applications ------------------------------------------------------------------


def test_permission_is_named_resource_action(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    response = admin.post(
        "/t/acme/api/permissions/", {"resource": "projects", "action": "write"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["name"] == "projects:write"
    [event] = events(acme, "rbac.permission_created")
    assert event.data["after"]["resource"] == "projects" and event.data["after"]["action"] == "write"
    listed = admin.get("/t/acme/api/permissions/?resource=projects").json()["results"]
    assert [p["name"] for p in listed] == ["projects:read", "projects:write"]


def test_duplicate_or_unknown_resource_permission_is_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    duplicate = admin.post(
        "/t/acme/api/permissions/", {"resource": "projects", "action": "read"}, content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert duplicate.json() == {"action": ["Permission 'projects:read' already exists."]}
    unknown = admin.post(
        "/t/acme/api/permissions/", {"resource": "nope", "action": "read"}, content_type="application/json"
    )
    assert unknown.json() == {"resource": ["Unknown resource 'nope'."]}


def test_scope_update_and_delete_are_audited(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    scope_id = rbac_data["ids"]["scopes"]
    assert (
        admin.patch(
            f"/t/acme/api/scopes/{scope_id}/", {"description": "Read things"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert admin.delete(f"/t/acme/api/scopes/{scope_id}/").status_code == 204
    [updated] = events(acme, "rbac.scope_changed")
    assert (updated.data["before"]["description"], updated.data["after"]["description"]) == ("", "Read things")
    [deleted] = events(acme, "rbac.scope_deleted")
    assert deleted.data == {"before": {"id": scope_id, "name": "read", "description": "Read things"}, "after": None}


def test_application_filter_and_validation(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    created = admin.post(
        "/t/acme/api/applications/", {"slug": "ops", "name": "Ops", "is_active": False}, content_type="application/json"
    )
    assert created.status_code == 201
    active = [a["slug"] for a in admin.get("/t/acme/api/applications/?is_active=true").json()["results"]]
    assert active == ["demo"]
    bad_filter = admin.get("/t/acme/api/applications/?is_active=maybe")
    assert bad_filter.status_code == 400
    assert bad_filter.json() == {"is_active": ["'maybe' is not a boolean (use true or false)."]}
    bad_slug = admin.post("/t/acme/api/applications/", {"slug": "Ops!", "name": "x"}, content_type="application/json")
    assert bad_slug.status_code == 400 and "slug" in bad_slug.json()


# --- groups and memberships ----------------------------------------------------------------------------------------


def test_group_lists_member_emails_read_only(admin: Client, rbac_data: dict[str, Any]) -> None:
    group_id = rbac_data["ids"]["groups"]
    assert admin.get(f"/t/acme/api/groups/{group_id}/").json()["members"] == ["alice@acme.test"]
    response = admin.patch(f"/t/acme/api/groups/{group_id}/", {"members": []}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["members"] == ["alice@acme.test"]  # members are managed at group-memberships/


def _without_access(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "access_changes"}


def test_membership_goes_through_add_and_remove_member(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        bob = UserFactory(email="bob@acme.test")
    response = admin.post(
        "/t/acme/api/group-memberships/", {"group": "engineering", "user": bob.pk}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["user_email"] == "bob@acme.test"
    membership_id = response.json()["id"]
    [added] = events(acme, "rbac.member_added")[-1:]
    assert _without_access(added.data) == {"group": "engineering", "user": "bob@acme.test"}
    assert added.data["access_changes"]["users_checked"] == 1  # whose access it changed (rbac.access_diff)
    assert added.target_id == str(membership_id)

    duplicate = admin.post(
        "/t/acme/api/group-memberships/", {"group": "engineering", "user": bob.pk}, content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert duplicate.json() == {"user": ["bob@acme.test is already a member of group 'engineering'."]}
    members = admin.get("/t/acme/api/group-memberships/?group=engineering").json()["results"]
    assert [m["user_email"] for m in members] == ["alice@acme.test", "bob@acme.test"]

    assert admin.patch(f"/t/acme/api/group-memberships/{membership_id}/", {}).status_code == 405
    assert admin.delete(f"/t/acme/api/group-memberships/{membership_id}/").status_code == 204
    [removed] = events(acme, "rbac.member_removed")
    assert _without_access(removed.data) == {"group": "engineering", "user": "bob@acme.test"}
    assert removed.data["access_changes"]["users_checked"] == 1  # whose access it changed (rbac.access_diff)
    assert events(acme, "api.groupmembership.deleted") == []  # one event per change: no second vocabulary
    with schema_context(acme.schema_name):
        assert not GroupMembership.objects.filter(pk=membership_id).exists()


def test_membership_of_another_tenants_user_is_400(admin: Client, rbac_data: dict[str, Any], globex: Tenant) -> None:
    with schema_context(globex.schema_name):
        stranger = UserFactory(email="stranger@globex.test")
    response = admin.post(
        "/t/acme/api/group-memberships/", {"group": "engineering", "user": stranger.pk}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"user": [f"Unknown user id {stranger.pk}."]}


# --- role bindings -------------------------------------------------------------------------------------------------


def test_binding_goes_through_grant_and_revoke(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    response = admin.post(
        "/t/acme/api/role-bindings/", {"role": "developer", "group": "engineering"}, content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["role"], body["group"], body["user"], body["user_email"]) == ("developer", "engineering", None, None)
    granted = events(acme, "rbac.role_granted")[-1]
    assert _without_access(granted.data) == {"role": "developer", "user": None, "group": "engineering"}
    assert granted.data["access_changes"]["users_checked"] == 1  # whose access it changed (rbac.access_diff)
    assert granted.target_id == str(body["id"])

    assert admin.delete(f"/t/acme/api/role-bindings/{body['id']}/").status_code == 204
    [revoked] = events(acme, "rbac.role_revoked", body["id"])
    assert _without_access(revoked.data) == {"role": "developer", "user": None, "group": "engineering"}
    assert revoked.data["access_changes"]["users_checked"] == 1  # whose access it changed (rbac.access_diff)
    assert events(acme, "api.rolebinding.deleted", body["id"]) == []


def test_binding_needs_exactly_one_holder(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    user_id = rbac_data["ids"]["users"]
    granted_before = len(events(acme, "rbac.role_granted"))
    message = {"non_field_errors": ["Give either a user or a group for this role binding, not both."]}
    both = admin.post(
        "/t/acme/api/role-bindings/",
        {"role": "developer", "user": user_id, "group": "engineering"},
        content_type="application/json",
    )
    assert (both.status_code, both.json()) == (400, message)
    neither = admin.post("/t/acme/api/role-bindings/", {"role": "developer"}, content_type="application/json")
    assert (neither.status_code, neither.json()) == (400, message)
    assert len(events(acme, "rbac.role_granted")) == granted_before


def test_duplicate_binding_and_unknown_role_are_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    user_id = rbac_data["ids"]["users"]
    duplicate = admin.post(
        "/t/acme/api/role-bindings/", {"role": "developer", "user": user_id}, content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert duplicate.json() == {"role": ["Role 'developer' is already bound to user alice@acme.test."]}
    unknown = admin.post(
        "/t/acme/api/role-bindings/", {"role": "Developer", "user": user_id}, content_type="application/json"
    )
    assert unknown.json() == {"role": ["Unknown role 'Developer'."]}


def test_bindings_cannot_be_changed_in_place(admin: Client, rbac_data: dict[str, Any]) -> None:
    binding_id = rbac_data["ids"]["role-bindings"]
    response = admin.put(
        f"/t/acme/api/role-bindings/{binding_id}/", {"role": "developer"}, content_type="application/json"
    )
    assert response.status_code == 405


def test_binding_filters(admin: Client, rbac_data: dict[str, Any]) -> None:
    user_id = rbac_data["ids"]["users"]
    assert admin.get(f"/t/acme/api/role-bindings/?user={user_id}").json()["count"] == 1
    assert admin.get("/t/acme/api/role-bindings/?role=developer").json()["count"] == 1
    assert admin.get("/t/acme/api/role-bindings/?group=engineering").json()["count"] == 0
    bad = admin.get("/t/acme/api/role-bindings/?user=alice")
    assert (bad.status_code, bad.json()) == (400, {"user": ["'alice' is not an integer id."]})


# --- tool policies -------------------------------------------------------------------------------------------------


def test_creates_tool_policy_with_names_that_exist(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    response = admin.post(
        "/t/acme/api/tool-policies/",
        {
            "application": "demo",
            "tool_name": "deploy",
            "roles": ["developer", "developer"],
            "scopes": ["read"],
            "permissions": ["projects:read"],
            "require_all": True,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["application"], body["roles"], body["permissions"], body["require_all"], body["is_enabled"]) == (
        "demo",
        ["developer"],
        ["projects:read"],
        True,
        True,
    )
    [event] = events(acme, "rbac.tool_policy_created", body["id"])
    assert event.data["before"] is None
    assert event.data["after"]["application"] == "demo" and event.data["after"]["roles"] == ["developer"]


def test_tool_policy_names_are_checked_case_sensitively(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    response = admin.post(
        "/t/acme/api/tool-policies/",
        {
            "application": "demo",
            "tool_name": "deploy",
            "roles": ["Developer", "ghost"],
            "groups": ["engineering"],
            "resources": ["Projects"],
            "permissions": ["projects:admin"],
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "roles": ["Unknown role 'Developer'.", "Unknown role 'ghost'."],
        "resources": ["Unknown resource 'Projects'."],
        "permissions": ["Unknown permission 'projects:admin'."],
    }
    with schema_context(acme.schema_name):
        assert not ToolPolicy.objects.filter(tool_name="deploy").exists()


def test_tool_policy_unknown_application_and_duplicate_tool_are_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    unknown = admin.post(
        "/t/acme/api/tool-policies/", {"application": "nope", "tool_name": "x"}, content_type="application/json"
    )
    assert unknown.json() == {"application": ["Unknown application 'nope'."]}
    duplicate = admin.post(
        "/t/acme/api/tool-policies/", {"application": "demo", "tool_name": "hello"}, content_type="application/json"
    )
    assert duplicate.status_code == 400
    assert duplicate.json() == {"tool_name": ["Application 'demo' already has a policy for tool 'hello'."]}


def test_tool_policy_update_is_audited_and_filters_work(admin: Client, rbac_data: dict[str, Any], acme: Tenant) -> None:
    policy_id = rbac_data["ids"]["tool-policies"]
    response = admin.patch(
        f"/t/acme/api/tool-policies/{policy_id}/", {"roles": [], "is_enabled": False}, content_type="application/json"
    )
    assert response.status_code == 200
    [event] = events(acme, "rbac.tool_policy_changed", policy_id)
    assert (event.data["before"]["roles"], event.data["after"]["roles"]) == (["developer"], [])
    assert (event.data["before"]["is_enabled"], event.data["after"]["is_enabled"]) == (True, False)
    assert admin.get("/t/acme/api/tool-policies/?application=demo").json()["count"] == 1
    assert admin.get("/t/acme/api/tool-policies/?application=other").json()["count"] == 0
    assert admin.get("/t/acme/api/tool-policies/?is_enabled=true").json()["count"] == 0
    assert admin.get("/t/acme/api/tool-policies/?search=hell").json()["results"][0]["tool_name"] == "hello"


def test_invalid_tool_name_is_400(admin: Client, rbac_data: dict[str, Any]) -> None:
    response = admin.post(
        "/t/acme/api/tool-policies/", {"application": "demo", "tool_name": "no spaces"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"tool_name": ["Tool names use letters, digits, '_', '.' or '-' (1-128 characters)."]}


def test_tool_policy_approval_is_set_through_the_api_and_validated(
    admin: Client, rbac_data: dict[str, Any], acme: Tenant
) -> None:
    url = f"/t/acme/api/tool-policies/{rbac_data['ids']['tool-policies']}/"

    def patch(body: dict[str, Any]) -> Any:
        return admin.patch(url, body, content_type="application/json")

    assert patch({"approval": "others"}).json()["approval_role"] == ["Name the RBAC role whose holders approve."]
    assert patch({"approval": "others", "approval_role": "nobody"}).json()["approval_role"] == [
        "Unknown role 'nobody'."
    ]
    assert "approval_count" in patch({"approval": "others_n", "approval_role": "developer"}).json()
    assert patch({"approval": "maybe"}).status_code == 400
    ok = patch({"approval": "others_n", "approval_role": "developer", "approval_count": 2, "approval_window": 120})
    assert ok.status_code == 200, ok.content
    assert ok.json()["approval"] == "others_n" and ok.json()["approval_expiry"] == 600
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="rbac.tool_policy_changed").latest("seq")
    assert event.data["changes"]["approval"] == {"before": "none", "after": "others_n"}
    assert patch({"approval": "self", "approval_role": ""}).status_code == 200
