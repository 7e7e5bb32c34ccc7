"""Effective grants: the demo table exactly, one query, cached, invalidated on every change — in every process."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from accounts.models import User
from rbac import grants as grants_module
from rbac import services
from rbac.demo import seed_rbac
from rbac.grants import effective_grants, grants_for_user_id, grants_from_claims, load_grants
from rbac.models import Group, Role, Scope
from tenants.models import Tenant
from tests.factories import PermissionFactory, ResourceFactory, RoleFactory, ScopeFactory, UserFactory
from tests.support.live import ROOT, live_server_env

pytestmark = pytest.mark.django_db

DEMO_USERS = ["alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test"]
EXPECTED = {  # the table: roles, groups, scopes, resources
    "alice@acme.test": ({"admin", "developer"}, {"engineering"}, {"read", "write"}, {"projects", "analytics"}),
    "bob@acme.test": ({"analyst"}, set(), {"read"}, {"analytics"}),
    "carol@acme.test": ({"deployer"}, {"devops"}, {"write"}, {"production"}),
    "dave@acme.test": ({"superuser"}, {"security-team"}, {"admin"}, {"production", "sensitive-data"}),
    "erin@globex.test": ({"admin"}, set(), {"read", "write"}, set()),
}


@pytest.fixture
def demo(acme: Tenant, globex: Tenant) -> None:
    for tenant, emails in ((acme, DEMO_USERS), (globex, ["erin@globex.test"])):
        with schema_context(tenant.schema_name):
            for email in emails:
                UserFactory(email=email)
            seed_rbac(tenant.slug)


def _as_table(email: str) -> tuple[set[str], ...]:
    grants = load_grants(User.objects.get(email=email).pk)
    return set(grants.roles), set(grants.groups), set(grants.scopes), set(grants.resources)


def test_demo_users_effective_grants_match_the_table_exactly(demo: None, acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        for email in DEMO_USERS:
            assert _as_table(email) == EXPECTED[email], email
    with schema_context(globex.schema_name):
        assert _as_table("erin@globex.test") == EXPECTED["erin@globex.test"]


def test_seeding_twice_changes_nothing(demo: None, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        counts = (Role.objects.count(), Group.objects.count(), Scope.objects.count())
        seed_rbac("acme")
        assert (Role.objects.count(), Group.objects.count(), Scope.objects.count()) == counts
        assert _as_table("alice@acme.test") == EXPECTED["alice@acme.test"]


def test_sources_say_where_each_grant_comes_from(demo: None, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        carol = load_grants(User.objects.get(email="carol@acme.test").pk)
        assert carol.sources[("roles", "deployer")] == ("via group devops",)
        assert carol.sources[("resources", "production")] == ("role deployer (via group devops)",)
        assert carol.sources[("groups", "devops")] == ("member",)
        alice = load_grants(User.objects.get(email="alice@acme.test").pk)
        assert alice.sources[("scopes", "read")] == ("role admin", "role developer")


def test_permissions_come_through_roles(in_acme: Tenant) -> None:
    user = UserFactory()
    role = RoleFactory(name="reader")
    role.permissions.add(PermissionFactory(resource=ResourceFactory(name="projects"), action="read"))
    services.grant_role(actor="tests", role=role, user=user)
    assert load_grants(user.pk).permissions == frozenset({"projects:read"})


def test_cold_fetch_is_one_query(demo: None, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user_id = User.objects.get(email="alice@acme.test").pk
        with CaptureQueriesContext(connection) as queries:
            load_grants(user_id)
        # django-tenants may first point the connection at the schema (SET search_path); that is routing.
        data_queries = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
        assert len(data_queries) == 1


def test_warm_fetch_makes_no_query_and_a_change_is_seen_by_the_next_call(
    in_acme: Tenant, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    role = RoleFactory(name="warm-role")
    assert grants_for_user_id(user.pk).roles == frozenset()
    with CaptureQueriesContext(connection) as queries:
        grants_for_user_id(user.pk)
    assert len(queries) == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_role(actor="tests", role=role, user=user)
    assert grants_for_user_id(user.pk).roles == frozenset({"warm-role"})
    with django_capture_on_commit_callbacks(execute=True):
        role.scopes.add(ScopeFactory(name="warm-scope"))
    assert grants_for_user_id(user.pk).scopes == frozenset({"warm-scope"})
    with django_capture_on_commit_callbacks(execute=True):
        role.delete()
    assert grants_for_user_id(user.pk).roles == frozenset()


def test_inactive_and_anonymous_users_have_no_grants(in_acme: Tenant, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import AnonymousUser

    user = UserFactory()
    services.grant_role(actor="tests", role=RoleFactory(name="r1"), user=user)
    assert effective_grants(user) is not None
    user.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        user.save()
    assert effective_grants(user) is None
    assert effective_grants(AnonymousUser()) is None


CHANGE_IN_OTHER_PROCESS = """
import django, sys
django.setup()
from django_tenants.utils import schema_context
from accounts.models import User
from rbac import services
from rbac.models import Role
with schema_context("tenant_acme"):
    user = User.objects.get(email="admin@acme.test")
    if sys.argv[1] == "grant":
        services.grant_role(actor="other-process", role=Role.objects.create(name=sys.argv[2]), user=user)
    else:
        services.delete_role(Role.objects.get(name=sys.argv[2]), actor="other-process")
"""


def _other_process(action: str, role: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHANGE_IN_OTHER_PROCESS, action, role],
        cwd=ROOT,
        env=live_server_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_change_committed_by_another_process_is_seen_on_the_next_call(acme: Tenant) -> None:
    role = f"xproc-{uuid.uuid4().hex[:8]}"
    with schema_context(acme.schema_name):
        admin_id = User.objects.get(email="admin@acme.test").pk
        assert role not in grants_for_user_id(admin_id).roles  # cached here now
        _other_process("grant", role)
        assert role in grants_for_user_id(admin_id).roles
        _other_process("delete", role)
        assert role not in grants_for_user_id(admin_id).roles


def test_cache_is_per_tenant(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory()
        services.grant_role(actor="tests", role=RoleFactory(name="acme-only"), user=user)
        assert grants_for_user_id(user.pk).roles == frozenset({"acme-only"})  # cached for acme
    with schema_context(globex.schema_name):
        # The same numeric id in globex is another person (or nobody): acme's entry must not be served.
        assert "acme-only" not in grants_for_user_id(user.pk).roles


def test_redis_unreachable_falls_back_to_the_database(in_acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    services.grant_role(actor="tests", role=RoleFactory(name="db-truth"), user=user)
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    grants_module.clear_local_cache()
    assert grants_module.current_version() is None
    assert grants_for_user_id(user.pk).roles == frozenset({"db-truth"})


def test_claims_count_only_when_defined_in_the_tenant(demo: None, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        grants, ignored = grants_from_claims({"roles": ["admin", "Admin", "ghost"], "scopes": "read"})
    assert grants.roles == frozenset({"admin"})
    assert grants.scopes == frozenset({"read"})
    assert ignored == {"roles": ["Admin", "ghost"]}
