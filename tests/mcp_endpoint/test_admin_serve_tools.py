"""Choosing in the dashboard which registered tools an application serves (the application's page)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from mcp_endpoint.registry import ensure_loaded, registry
from rbac.demo import seed_rbac
from rbac.models import ToolPolicy
from tenants.models import Tenant
from tests.factories import ApplicationFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.admin_form import management_form

pytestmark = pytest.mark.django_db


def test_the_application_page_serves_ticked_registered_tools_with_their_declared_requirements(
    in_acme: Tenant,
) -> None:
    ensure_loaded()
    seed_rbac("acme")
    app = ApplicationFactory(slug="picked", name="Picked tools")
    admin = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    url = f"/t/acme/admin/rbac/application/{app.pk}/change/"
    page = admin.get(url).content.decode()
    assert "Serve registered tools" in page and 'name="serve_tools" value="view_analytics"' in page

    form = {
        "slug": "picked",
        "name": "Picked tools",
        "description": "",
        "is_active": "on",
        "auth_mode": "both",
        "serve_tools": ["view_analytics", "hello"],
        **management_form("tool_policies"),
    }
    response = admin.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    policies = {policy.tool_name: policy for policy in ToolPolicy.objects.filter(application=app)}
    assert set(policies) == {"view_analytics", "hello"}
    declared = registry.get("view_analytics").requirement
    assert policies["view_analytics"].scopes == declared["scopes"] == ["read"]
    assert policies["view_analytics"].resources == ["analytics"] and policies["view_analytics"].require_all
    created = AuditEvent.objects.filter(action="rbac.tool_policy_created", target_label__startswith="picked/")
    assert created.count() == 2 and {event.actor_label for event in created} == {"admin@acme.test"}

    # Served tools are no longer offered; an unknown name is refused with a form error.
    page = admin.get(url).content.decode()
    assert 'name="serve_tools" value="view_analytics"' not in page
    assert 'name="serve_tools" value="admin_panel"' in page
    refused = admin.post(url, {**form, "serve_tools": ["no_such_tool"]})
    assert refused.status_code == 200 and "no_such_tool is not one of the available choices" in refused.content.decode()
