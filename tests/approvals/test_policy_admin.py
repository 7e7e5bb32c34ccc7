"""The approval fields of a tool policy in the tenant dashboard: shown, validated, saved through the service."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from rbac.models import ToolPolicy
from tests.factories import ApplicationFactory, RoleFactory, ToolPolicyFactory
from tests.support.admin_form import AdminForm

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


def test_admin_sets_an_approval_policy_on_the_tool_page(admin, acme) -> None:  # type: ignore[no-untyped-def]
    with schema_context(acme.schema_name):
        RoleFactory(name="release-manager")
        policy = ToolPolicyFactory(application=ApplicationFactory(slug="ops"), tool_name="deploy")
    page_url = f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/"
    form = AdminForm(admin.get(page_url).content.decode())
    form.set("approval", "others_n")
    form.set("approval_count", "1")
    refused = admin.post(page_url, form.data())
    assert refused.status_code == 200
    body = refused.content.decode()
    assert "Name the RBAC role whose holders approve." in body and "N approvers means 2 or more." in body
    form.set("approval_role", "ghost")
    form.set("approval_count", "2")
    assert "Unknown role: ghost." in admin.post(page_url, form.data()).content.decode()
    form.set("approval_role", "release-manager")
    form.set("approval_window", "300")
    assert admin.post(page_url, form.data()).status_code == 302
    with schema_context(acme.schema_name):
        saved = ToolPolicy.objects.get(pk=policy.pk)
        assert (saved.approval, saved.approval_role, saved.required_approvals, saved.approval_window) == (
            "others_n",
            "release-manager",
            2,
            300,
        )
        event = AuditEvent.objects.filter(action="rbac.tool_policy_changed").latest("seq")
        assert event.data["changes"]["approval"] == {"before": "none", "after": "others_n"}
    listing = admin.get("/t/acme/admin/rbac/toolpolicy/?approval__exact=others_n").content.decode()
    assert "deploy" in listing
