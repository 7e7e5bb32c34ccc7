"""The API's decision endpoints (effective permissions, simulator) on the demo data, and the OpenAPI schema/docs."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from rbac.demo import seed_rbac
from rbac.models import Application
from tenants.models import Tenant
from tests.factories import ApplicationFactory, ToolPolicyFactory, UserFactory
from tests.support.api import client_for, grant_perms, login

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


DEMO_USERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test")

# Every demo tool decided for bob (role analyst: scope read, resource analytics), as the engine words it.
BOB_TOOLS = [
    {
        "tool": "admin_dashboard",
        "allowed": False,
        "reason": "denied: needs any of roles [admin]",
        "missing": {"roles": ["admin"]},
    },
    {
        "tool": "admin_panel",
        "allowed": False,
        "reason": "denied: needs any of roles [admin]",
        "missing": {"roles": ["admin"]},
    },
    {"tool": "calculator", "allowed": True, "reason": "allowed: any authenticated user", "missing": {}},
    {
        "tool": "create_resource",
        "allowed": False,
        "reason": "denied: needs any of scopes [write]",
        "missing": {"scopes": ["write"]},
    },
    {
        "tool": "deploy_production",
        "allowed": False,
        "reason": "denied: missing one of roles [admin, deployer]; one of scopes [write]; "
        "all of resources [production]",
        "missing": {"roles": ["admin", "deployer"], "scopes": ["write"], "resources": ["production"]},
    },
    {
        "tool": "engineering_tools",
        "allowed": False,
        "reason": "denied: needs any of groups [devops, engineering]",
        "missing": {"groups": ["devops", "engineering"]},
    },
    {"tool": "hello", "allowed": True, "reason": "allowed: any authenticated user", "missing": {}},
    {"tool": "list_my_repos", "allowed": True, "reason": "allowed: has scope read", "missing": {}},
    {
        "tool": "sensitive_operations",
        "allowed": False,
        "reason": "denied: missing one of roles [admin, superuser]; one of groups [security-team]; "
        "one of scopes [admin, write]; all of resources [production, sensitive-data]",
        "missing": {
            "roles": ["admin", "superuser"],
            "groups": ["security-team"],
            "scopes": ["admin", "write"],
            "resources": ["production", "sensitive-data"],
        },
    },
    {"tool": "view_analytics", "allowed": True, "reason": "allowed: meets every requirement", "missing": {}},
    {"tool": "view_reports", "allowed": True, "reason": "allowed: has role analyst", "missing": {}},
]
# Each decision also names the tool's approval policy (docs/approvals.md): none of the seed's asks for one.
BOB_TOOLS = [{**tool, "approval": "none"} for tool in BOB_TOOLS]


@pytest.fixture
def demo(acme: Tenant) -> dict[str, Any]:
    """The seed's demo users and RBAC data in acme; returns user ids and the demo application's id."""
    with schema_context(acme.schema_name):
        users = {email: UserFactory(email=email, full_name=email.split("@")[0].title()) for email in DEMO_USERS}
        seed_rbac("acme")
        app = Application.objects.get(slug="demo")
    return {"users": {email: user.pk for email, user in users.items()}, "app": app.pk}


@pytest.fixture
def admin(acme: Tenant) -> Client:
    return login("acme", "admin@acme.test")


def _effective(client: Client, user_id: int, tenant: str = "acme") -> Any:
    return client.get(f"/t/{tenant}/api/users/{user_id}/effective-permissions/")


def _simulate(client: Client, app_id: int, body: dict[str, Any], tenant: str = "acme") -> Any:
    return client.post(f"/t/{tenant}/api/applications/{app_id}/simulate/", body, content_type="application/json")


# --- effective permissions -----------------------------------------------------------------------------------


def test_effective_permissions_of_bob(admin: Client, demo: dict[str, Any]) -> None:
    bob_id = demo["users"]["bob@acme.test"]
    response = _effective(admin, bob_id)
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": bob_id, "email": "bob@acme.test", "full_name": "Bob", "is_active": True}
    assert body["grants"] == {
        "roles": [{"name": "analyst", "sources": ["direct"]}],
        "groups": [],
        "scopes": [{"name": "read", "sources": ["role analyst"]}],
        "resources": [{"name": "analytics", "sources": ["role analyst"]}],
        "permissions": [],
    }
    [application] = body["applications"]
    assert (application["id"], application["slug"], application["name"]) == (demo["app"], "demo", "Demo tools")
    assert application["tools"] == BOB_TOOLS


def test_effective_permissions_say_where_grants_come_from(admin: Client, demo: dict[str, Any]) -> None:
    carol = _effective(admin, demo["users"]["carol@acme.test"]).json()
    assert carol["grants"]["roles"] == [{"name": "deployer", "sources": ["via group devops"]}]
    assert carol["grants"]["groups"] == [{"name": "devops", "sources": ["member"]}]
    assert carol["grants"]["resources"] == [{"name": "production", "sources": ["role deployer (via group devops)"]}]
    tools = {tool["tool"]: tool for tool in carol["applications"][0]["tools"]}
    assert tools["deploy_production"]["allowed"] is True
    assert tools["deploy_production"]["reason"] == "allowed: meets every requirement"
    assert tools["engineering_tools"]["reason"] == "allowed: has group devops"

    alice = _effective(admin, demo["users"]["alice@acme.test"]).json()
    assert {"name": "read", "sources": ["role admin", "role developer"]} in alice["grants"]["scopes"]
    alice_tools = {tool["tool"]: tool for tool in alice["applications"][0]["tools"]}
    assert alice_tools["admin_panel"]["reason"] == "allowed: has role admin"
    assert alice_tools["deploy_production"]["reason"] == "denied: missing all of resources [production]"


def test_only_active_applications_are_decided(admin: Client, demo: dict[str, Any], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        retired = ApplicationFactory(slug="retired", name="Retired", is_active=False)
        ToolPolicyFactory(application=retired, tool_name="old_tool")
        ops = ApplicationFactory(slug="ops", name="Ops")
        ToolPolicyFactory(application=ops, tool_name="restart", is_enabled=False)
    body = _effective(admin, demo["users"]["bob@acme.test"]).json()
    assert [app["slug"] for app in body["applications"]] == ["demo", "ops"]
    assert body["applications"][1]["tools"] == [
        {
            "tool": "restart",
            "allowed": False,
            "reason": "the tool's policy is disabled",
            "missing": {},
            "approval": "none",
        }
    ]


def test_inactive_user_holds_nothing(admin: Client, demo: dict[str, Any], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        User.objects.filter(email="bob@acme.test").update(is_active=False)
    body = _effective(admin, demo["users"]["bob@acme.test"]).json()
    assert body["user"]["is_active"] is False
    assert body["grants"] == {"roles": [], "groups": [], "scopes": [], "resources": [], "permissions": []}
    assert {(t["allowed"], t["reason"]) for t in body["applications"][0]["tools"]} == {
        (False, "authentication required")
    }


def test_effective_permissions_follow_a_role_granted_through_the_api(
    admin: Client, demo: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    bob_id = demo["users"]["bob@acme.test"]
    before = {t["tool"]: t["allowed"] for t in _effective(admin, bob_id).json()["applications"][0]["tools"]}
    assert before["admin_panel"] is False  # and now cached
    with django_capture_on_commit_callbacks(execute=True):  # what a commit would run: the signals' cache bump
        response = admin.post(
            "/t/acme/api/role-bindings/", {"role": "admin", "user": bob_id}, content_type="application/json"
        )
    assert response.status_code == 201
    after = {t["tool"]: t for t in _effective(admin, bob_id).json()["applications"][0]["tools"]}
    assert after["admin_panel"]["allowed"] is True
    assert after["admin_panel"]["reason"] == "allowed: has role admin"


def test_effective_permissions_permission_matrix(demo: dict[str, Any], acme: Tenant, globex: Tenant) -> None:
    bob_id = demo["users"]["bob@acme.test"]
    with schema_context(acme.schema_name):
        no_perms = UserFactory(email="staff@acme.test", is_staff=True)
        users_only = UserFactory(email="users-only@acme.test", is_staff=True)
        grant_perms(users_only, "accounts.view_user")
        reader = UserFactory(email="reader@acme.test", is_staff=True)
        grant_perms(reader, "accounts.view_user", "rbac.view_application", "rbac.view_toolpolicy")
        not_staff = UserFactory(email="plain@acme.test")
        grant_perms(not_staff, "accounts.view_user", "rbac.view_application", "rbac.view_toolpolicy")
    assert _effective(Client(), bob_id).status_code == 401  # anonymous: Bearer challenge
    assert _effective(client_for(acme, not_staff), bob_id).status_code == 403
    assert _effective(client_for(acme, no_perms), bob_id).status_code == 403
    assert _effective(client_for(acme, users_only), bob_id).status_code == 403
    assert _effective(client_for(acme, reader), bob_id).status_code == 200
    # Bob's id at globex: not bob, and nothing there with that id.
    with schema_context(globex.schema_name):
        assert not User.objects.filter(pk=bob_id).exists()
    assert _effective(login("globex", "admin@globex.test"), bob_id, tenant="globex").status_code == 404


# --- simulator -------------------------------------------------------------------------------------------------


def test_simulating_a_user_gives_their_effective_decisions(admin: Client, demo: dict[str, Any], acme: Tenant) -> None:
    bob_id = demo["users"]["bob@acme.test"]
    with schema_context(acme.schema_name):
        events_before = AuditEvent.objects.count()
    response = _simulate(admin, demo["app"], {"user": bob_id})
    assert response.status_code == 200
    body = response.json()
    assert body["application"] == "demo"
    assert body["user"]["email"] == "bob@acme.test"
    assert body["grants"] == {
        "roles": ["analyst"],
        "groups": [],
        "scopes": ["read"],
        "resources": ["analytics"],
        "permissions": [],
    }
    assert body["ignored"] == {}
    assert body["tools"] == BOB_TOOLS
    with schema_context(acme.schema_name):
        assert AuditEvent.objects.count() == events_before  # a simulation changes nothing


def test_simulated_claims_count_only_if_they_exist_here(admin: Client, demo: dict[str, Any]) -> None:
    response = _simulate(
        admin, demo["app"], {"roles": ["admin", "Admin", "ghost"], "scopes": ["read"], "groups": ["nope"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"] is None
    assert body["grants"] == {"roles": ["admin"], "groups": [], "scopes": ["read"], "resources": [], "permissions": []}
    assert body["ignored"] == {"roles": ["Admin", "ghost"], "groups": ["nope"]}
    tools = {tool["tool"]: tool for tool in body["tools"]}
    assert tools["admin_panel"] == {
        "tool": "admin_panel",
        "allowed": True,
        "reason": "allowed: has role admin",
        "missing": {},
        "approval": "none",
    }
    assert tools["view_analytics"]["reason"] == "denied: missing all of resources [analytics]"


def test_simulating_no_claims_is_an_authenticated_user_with_nothing(admin: Client, demo: dict[str, Any]) -> None:
    tools = {tool["tool"]: tool["allowed"] for tool in _simulate(admin, demo["app"], {}).json()["tools"]}
    assert {name for name, allowed in tools.items() if allowed} == {"hello", "calculator"}


def test_simulate_rejects_bad_input(admin: Client, demo: dict[str, Any], globex: Tenant) -> None:
    both = _simulate(admin, demo["app"], {"user": demo["users"]["bob@acme.test"], "roles": ["admin"]})
    assert (both.status_code, both.json()) == (
        400,
        {"non_field_errors": ["Simulate either a user or a set of claims, not both."]},
    )
    not_a_list = _simulate(admin, demo["app"], {"roles": "admin"})
    assert not_a_list.status_code == 400
    assert not_a_list.json() == {"roles": ['Expected a list of items but got type "str".']}
    with schema_context(globex.schema_name):
        stranger = UserFactory(email="stranger@globex.test")
    unknown_user = _simulate(admin, demo["app"], {"user": stranger.pk})
    assert (unknown_user.status_code, unknown_user.json()) == (400, {"user": [f"Unknown user id {stranger.pk}."]})


def test_simulate_permission_matrix(demo: dict[str, Any], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        no_perms = UserFactory(email="staff@acme.test", is_staff=True)
        policy_reader = UserFactory(email="policies@acme.test", is_staff=True)
        grant_perms(policy_reader, "rbac.view_application", "rbac.view_toolpolicy")
    claims = {"roles": ["admin"]}
    assert _simulate(Client(), demo["app"], claims).status_code == 401  # anonymous: Bearer challenge
    assert _simulate(client_for(acme, no_perms), demo["app"], claims).status_code == 403
    reader = client_for(acme, policy_reader)
    assert _simulate(reader, demo["app"], claims).status_code == 200  # read-only: no add_ permission needed
    denied = _simulate(reader, demo["app"], {"user": demo["users"]["bob@acme.test"]})
    assert denied.status_code == 403
    assert denied.json() == {"detail": "Simulating a user needs the permission to view users."}


def test_simulating_an_acme_application_at_globex_is_404(demo: dict[str, Any], globex: Tenant) -> None:
    with schema_context(globex.schema_name):
        assert not Application.objects.filter(pk=demo["app"]).exists()
    assert _simulate(login("globex", "admin@globex.test"), demo["app"], {}, tenant="globex").status_code == 404


# --- OpenAPI schema and docs -----------------------------------------------------------------------------------------


def test_schema_paths_are_under_the_tenant_being_viewed(admin: Client, acme: Tenant) -> None:
    response = admin.get("/t/acme/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert all(path.startswith("/t/acme/api/") for path in paths), list(paths)
    assert {
        "/t/acme/api/roles/",
        "/t/acme/api/tool-policies/{id}/",
        "/t/acme/api/applications/{id}/simulate/",
        "/t/acme/api/users/{id}/effective-permissions/",
    } <= set(paths)
    assert paths["/t/acme/api/roles/"]["get"]["operationId"] == "roles_list"

    globex_paths = login("globex", "admin@globex.test").get("/t/globex/api/schema/?format=json").json()["paths"]
    assert "/t/globex/api/roles/" in globex_paths
    assert not any("/t/acme/" in path for path in globex_paths)


def test_schema_is_yaml_by_default_and_staff_only(admin: Client, acme: Tenant) -> None:
    response = admin.get("/t/acme/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert "/t/acme/api/roles/:" in response.content.decode()
    assert Client().get("/t/acme/api/schema/").status_code == 401  # anonymous: Bearer challenge
    with schema_context(acme.schema_name):
        plain = UserFactory(email="plain@acme.test")
    assert client_for(acme, plain).get("/t/acme/api/schema/").status_code == 403


def test_schema_generates_without_warnings(tmp_path: Any) -> None:
    # Host routing (ROOT_URLCONF) shape: /api/… paths; --fail-on-warn turns any drf-spectacular warning into an error.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    assert "  /api/roles/:" in out.read_text()


def test_docs_page_lists_the_endpoints_without_loading_anything_remote(admin: Client) -> None:
    response = admin.get("/t/acme/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<a href="/t/acme/api/roles/"><code>/t/acme/api/roles/</code></a>' in page
    assert "/t/acme/api/applications/{id}/simulate/" in page
    assert 'href="/t/acme/api/schema/?format=json"' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_docs_page_sends_anonymous_visitors_to_the_login(acme: Tenant) -> None:
    response = Client().get("/t/acme/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/admin/login/?next=/t/acme/api/docs/"


def test_the_simulator_shows_each_tools_approval_policy(admin: Client, demo: dict[str, Any], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        Application.objects.get(pk=demo["app"]).tool_policies.filter(tool_name="deploy_production").update(
            approval="others_n", approval_role="admin", approval_count=2, approval_window=300
        )
    body = _simulate(admin, demo["app"], {"user": demo["users"]["carol@acme.test"]}).json()
    deploy = next(tool for tool in body["tools"] if tool["tool"] == "deploy_production")
    assert deploy["allowed"] is True
    assert deploy["approval"] == (
        "2 approvals by role admin, never the caller; expires after 600 s; covers identical calls for 300 s"
    )
    page = admin.get("/t/acme/admin/rbac/application/simulator/", {"application": "demo", "user": "carol@acme.test"})
    assert page.status_code == 200 and "2 approvals by role admin, never the caller" in page.content.decode()
