"""Fixtures of the RBAC tests alone: a small RBAC world in acme for the management API tests."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from rbac import services
from tenants.models import Tenant
from tests.factories import (
    ApplicationFactory,
    GroupFactory,
    PermissionFactory,
    ResourceFactory,
    RoleFactory,
    ScopeFactory,
    ToolPolicyFactory,
    UserFactory,
)


@pytest.fixture
def rbac_data(acme: Tenant) -> dict[str, Any]:
    with schema_context(acme.schema_name):
        read = ScopeFactory(name="read")
        projects = ResourceFactory(name="projects")
        perm = PermissionFactory(resource=projects, action="read")
        role = RoleFactory(name="developer", description="Builds things")
        role.scopes.add(read)
        group = GroupFactory(name="engineering")
        user = UserFactory(email="alice@acme.test", full_name="Alice Example")
        membership = services.add_member(actor="tests", group=group, user=user)
        binding = services.grant_role(actor="tests", role=role, user=user)
        app = ApplicationFactory(slug="demo", name="Demo")
        policy = ToolPolicyFactory(application=app, tool_name="hello", roles=["developer"])
    ids = {
        "applications": app.pk,
        "roles": role.pk,
        "groups": group.pk,
        "scopes": read.pk,
        "resources": projects.pk,
        "permissions": perm.pk,
        "tool-policies": policy.pk,
        "role-bindings": binding.pk,
        "group-memberships": membership.pk,
        "users": user.pk,
    }
    return {"ids": ids, "user": user, "role": role, "group": group, "app": app}
