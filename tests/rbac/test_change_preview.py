"""The change preview of the RBAC dashboard (issue 25): before a change is saved, who gains and who loses which
tools, decided by the one engine; the saved change's audit event records the same diff (``access_changes``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from rbac import access_diff, services
from rbac.demo import DEMO, seed_rbac
from rbac.models import Group, GroupMembership, Role, RoleBinding, Scope, ToolPolicy
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import AdminForm

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

BOB_LOSES_DEVELOPER = [{"user": "bob@acme.test", "gains": [], "loses": ["demo/create_resource"]}]


@pytest.fixture
def demo(in_acme: Tenant) -> dict[str, User]:
    users = {email: UserFactory(email=email) for email in DEMO["acme"]["users"]}
    seed_rbac("acme")
    # bob: analyst (read, analytics) and developer (read, write, projects, analytics); only developer grants write.
    services.grant_role(actor="tests", role=Role.objects.get(name="developer"), user=users["bob@acme.test"])
    return users


def _admin() -> Client:
    client = Client()
    response = client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    assert response.status_code == 302
    return client


def _changes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [{key: user[key] for key in ("user", "gains", "loses")} for user in data["access_changes"]["users"]]


def _bob_without_developer(admin: Client, bob: User) -> dict[str, list[str]]:
    """bob's change form as the browser posts it, with the developer row of the roles inline marked for deletion."""
    form = AdminForm(admin.get(f"/t/acme/admin/accounts/user/{bob.pk}/change/").content.decode())
    developer = str(Role.objects.get(name="developer").pk)
    prefix = next(
        key[: -len("-role")] for key, value in form.values.items() if key.endswith("-role") and value == [developer]
    )
    form.check(f"{prefix}-DELETE", True)
    return form.data()


def test_the_preview_shows_what_bob_loses_and_saves_nothing(demo: dict[str, User]) -> None:
    bob = demo["bob@acme.test"]
    binding = RoleBinding.objects.get(user=bob, role__name="developer")
    admin = _admin()
    data = _bob_without_developer(admin, bob)
    data.pop("_save")
    before = AuditEvent.objects.count()
    page = admin.post(f"/t/acme/admin/accounts/user/{bob.pk}/change/", {**data, "_preview": "Preview changes"})
    assert page.status_code == 200
    text = page.content.decode()
    assert 'tr data-user="bob@acme.test"' in text
    assert 'class="access-loss" data-tool="demo/create_resource"' in text
    assert 'class="access-gain"' not in text
    assert text.count("data-user=") == 1
    # Nothing was written: the binding stands, no event, and the page re-posts the same data to save it.
    assert RoleBinding.objects.filter(user=bob, role__name="developer").exists()
    assert AuditEvent.objects.count() == before
    assert 'name="_continue" value="Confirm and save"' in text
    assert 'name="csrfmiddlewaretoken"' in text and 'name="_preview"' not in text

    saved = admin.post(f"/t/acme/admin/accounts/user/{bob.pk}/change/", {**data, "_continue": "Confirm and save"})
    assert saved.status_code == 302
    assert not RoleBinding.objects.filter(user=bob, role__name="developer").exists()
    event = AuditEvent.objects.get(action="rbac.role_revoked", target_id=str(binding.pk))
    assert _changes(event.data) == BOB_LOSES_DEVELOPER
    assert event.data["access_changes"]["complete"] is True


def test_a_change_that_alters_no_access_says_so(demo: dict[str, User]) -> None:
    role = Role.objects.get(name="developer")
    admin = _admin()
    form = AdminForm(admin.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode())
    form.set("description", "Builds things")
    page = admin.post(f"/t/acme/admin/rbac/role/{role.pk}/change/", form.data("_preview"))
    assert page.status_code == 200
    assert '<p class="access-diff-none" id="access-diff-none">No one\'s access changes.</p>' in page.content.decode()
    role.refresh_from_db()
    assert role.description == ""


def test_a_role_edit_is_previewed_for_its_holders_and_recorded(demo: dict[str, User]) -> None:
    role = Role.objects.get(name="developer")  # held by alice (directly) and bob
    admin = _admin()
    form = AdminForm(admin.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode())
    form.choose("scopes", "read")  # drop write
    url = f"/t/acme/admin/rbac/role/{role.pk}/change/"
    text = admin.post(url, form.data("_preview")).content.decode()
    assert 'tr data-user="bob@acme.test"' in text
    assert 'tr data-user="alice@acme.test"' not in text  # alice's admin role grants write too
    assert admin.post(url, form.data("_save")).status_code == 302
    event = AuditEvent.objects.get(action="rbac.role_changed", target_id=str(role.pk))
    assert _changes(event.data) == BOB_LOSES_DEVELOPER


def test_a_new_holder_of_a_role_is_found_by_the_preview(demo: dict[str, User]) -> None:
    carol = demo["carol@acme.test"]  # devops → deployer: write, production
    role = Role.objects.get(name="admin")
    admin = _admin()
    form = AdminForm(admin.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode())
    total = int(form.values["bindings-TOTAL_FORMS"][0])
    form.set("bindings-TOTAL_FORMS", str(total + 1))
    form.set(f"bindings-{total}-user", str(carol.pk))
    form.set(f"bindings-{total}-group", "")
    form.set(f"bindings-{total}-role", str(role.pk))
    text = admin.post(f"/t/acme/admin/rbac/role/{role.pk}/change/", form.data("_preview")).content.decode()
    for tool in ("admin_panel", "admin_dashboard", "view_reports"):
        assert f'class="access-gain" data-tool="demo/{tool}"' in text, tool
    assert not RoleBinding.objects.filter(role=role, user=carol).exists()


def test_group_membership_and_policy_edits_are_previewed(demo: dict[str, User]) -> None:
    admin = _admin()
    engineering = Group.objects.get(name="engineering")
    dave = demo["dave@acme.test"]
    page = admin.post(
        "/t/acme/admin/rbac/groupmembership/add/",
        {"group": engineering.pk, "user": dave.pk, "_preview": "Preview changes"},
    )
    assert 'class="access-gain" data-tool="demo/engineering_tools"' in page.content.decode()
    assert not GroupMembership.objects.filter(group=engineering, user=dave).exists()

    # A tool policy is decided for every user: hello (open) restricted to admins is lost by all but alice.
    policy = ToolPolicy.objects.get(tool_name="hello")
    form = AdminForm(admin.get(f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/").content.decode())
    form.set("roles", "admin")
    text = admin.post(f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/", form.data("_preview")).content.decode()
    losers = {"bob@acme.test", "carol@acme.test", "dave@acme.test"}
    for email in losers:
        assert f'tr data-user="{email}"' in text
    assert 'tr data-user="alice@acme.test"' not in text
    assert admin.post(f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/", form.data("_save")).status_code == 302
    event = AuditEvent.objects.get(action="rbac.tool_policy_changed", target_id=str(policy.pk))
    assert {change["user"] for change in _changes(event.data)} >= losers
    assert all(change["loses"] == ["demo/hello"] for change in _changes(event.data))


def test_the_delete_page_shows_who_loses_what(demo: dict[str, User]) -> None:
    binding = RoleBinding.objects.get(user=demo["bob@acme.test"], role__name="developer")
    admin = _admin()
    text = admin.get(f"/t/acme/admin/rbac/rolebinding/{binding.pk}/delete/").content.decode()
    assert 'class="access-loss" data-tool="demo/create_resource"' in text
    assert RoleBinding.objects.filter(pk=binding.pk).exists()
    assert admin.post(f"/t/acme/admin/rbac/rolebinding/{binding.pk}/delete/", {"post": "yes"}).status_code == 302
    event = AuditEvent.objects.get(action="rbac.role_revoked", target_id=str(binding.pk))
    assert _changes(event.data) == BOB_LOSES_DEVELOPER


def test_deleting_a_group_records_what_its_members_lose(demo: dict[str, User]) -> None:
    group = Group.objects.get(name="devops")  # carol, through it: deployer (write, production)
    pk = group.pk
    with access_diff.recording():
        services.delete_group(group, actor="tests")
    event = AuditEvent.objects.get(action="rbac.group_deleted", target_id=str(pk))
    assert _changes(event.data) == [
        {
            "user": "carol@acme.test",
            "gains": [],
            "loses": ["demo/create_resource", "demo/deploy_production", "demo/engineering_tools"],
        }
    ]


def test_writes_outside_the_dashboard_record_no_diff(demo: dict[str, User]) -> None:
    binding = RoleBinding.objects.get(user=demo["bob@acme.test"], role__name="developer")
    services.revoke_role(actor="tests", role=binding.role, user=demo["bob@acme.test"])
    event = AuditEvent.objects.get(action="rbac.role_revoked", target_id=str(binding.pk))
    assert "access_changes" not in event.data


def test_the_diff_says_when_it_is_not_complete(demo: dict[str, User], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_diff, "MAX_USERS", 2)
    policy = ToolPolicy.objects.get(tool_name="hello")
    pk = policy.pk
    with access_diff.recording():
        services.delete_tool_policy(policy, actor="tests")
    data = AuditEvent.objects.get(action="rbac.tool_policy_deleted", target_id=str(pk)).data["access_changes"]
    everyone = User.objects.count()
    assert data["users_checked"] == 2 and data["users_affected"] == everyone > 2 and data["complete"] is False
    assert len(data["users"]) == 2


def test_an_invalid_form_is_shown_again_not_previewed(demo: dict[str, User]) -> None:
    role = Role.objects.get(name="developer")
    admin = _admin()
    form = AdminForm(admin.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode())
    form.set("name", "not a name!")
    page = admin.post(f"/t/acme/admin/rbac/role/{role.pk}/change/", form.data("_preview"))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="access-diff' not in text and "errornote" in text


def test_pages_without_a_preview_show_none(demo: dict[str, User]) -> None:
    admin = _admin()
    scope = Scope.objects.get(name="write")
    for url in (f"/t/acme/admin/rbac/scope/{scope.pk}/delete/", f"/t/acme/admin/rbac/scope/{scope.pk}/change/"):
        text = admin.get(url).content.decode()
        assert "access-diff" not in text and 'name="_preview"' not in text, url
    role = Role.objects.get(name="developer")
    assert 'name="_preview"' in admin.get(f"/t/acme/admin/rbac/role/{role.pk}/change/").content.decode()


def test_a_snapshot_costs_the_same_queries_for_few_and_many_users(demo: dict[str, User]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    analyst = Role.objects.get(name="analyst")
    extra = [UserFactory(email=f"many-{i}@acme.test") for i in range(30)]
    for user in extra:
        services.grant_role(actor="tests", role=analyst, user=user)
    with CaptureQueriesContext(connection) as few:
        small = access_diff.snapshot({demo["bob@acme.test"].pk})
    holders = access_diff.holders_of_roles([analyst.pk])
    with CaptureQueriesContext(connection) as many:
        large = access_diff.snapshot(holders)
    assert len(small.allowed) == 1 and len(large.allowed) == 31
    assert len(many.captured_queries) == len(few.captured_queries) <= 5
