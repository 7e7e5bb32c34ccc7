from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.test import override_settings
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from oauth.client_services import set_dynamic_registration
from oauth.models import ProviderSettings
from rbac.demo import DEMO_POLICIES
from rbac.models import Application, ToolPolicy
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_seed_demo_is_idempotent_and_creates_the_demo_users() -> None:
    call_command("seed_demo")
    call_command("seed_demo")
    with schema_context(Tenant.objects.get(slug="acme").schema_name):
        emails = set(User.objects.values_list("email", flat=True))
        assert {"admin@acme.test", "alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test"} <= emails
        assert User.objects.get(email="alice@acme.test").check_password("authsec-demo")
        assert not User.objects.get(email="alice@acme.test").is_staff
        for app in ("demo", "demo-oauth"):
            deploy = ToolPolicy.objects.get(application__slug=app, tool_name="deploy_production")
            assert (deploy.approval, deploy.approval_role, deploy.required_approvals) == ("others", "admin", 1)
            sensitive = ToolPolicy.objects.get(application__slug=app, tool_name="sensitive_operations")
            assert sensitive.approval == "self"
            assert ToolPolicy.objects.get(application__slug=app, tool_name="hello").approval == "none"
    with schema_context(Tenant.objects.get(slug="globex").schema_name):
        assert set(User.objects.values_list("email", flat=True)) == {"admin@globex.test", "erin@globex.test"}
    assert User.objects.filter(email="platform@authsec.test", is_superuser=True).count() == 1


@override_settings(DEBUG=False)
def test_seed_demo_refuses_with_debug_off() -> None:
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")


@override_settings(DEBUG=False, AUTHSEC_DEMO_PASSWORD="another-demo-pass")
def test_seed_demo_force_uses_the_configured_password() -> None:
    call_command("seed_demo", "--force")
    with schema_context("tenant_acme"):
        assert User.objects.get(email="carol@acme.test").check_password("another-demo-pass")


def _register(tenant: str) -> dict[str, object]:
    body = {
        "client_name": "Claude Code",
        "redirect_uris": ["http://localhost:54545/callback"],
        "token_endpoint_auth_method": "none",
    }
    response = HttpClient().post(f"/t/{tenant}/oauth/register", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


@override_settings(DEBUG=True)
def test_seed_demo_opens_registration_in_acme_only() -> None:
    """make run's demo: a first MCP connection to acme just works; globex holds clients, as create_tenant does."""
    with schema_context("tenant_globex"):
        ProviderSettings.objects.all().delete()  # a tenant as create_tenant leaves it (rolled back after the test)
        assert ProviderSettings.current().dynamic_registration == ProviderSettings.Registration.APPROVAL
    call_command("seed_demo")
    assert _register("acme")["authsec_status"] == "active"
    assert _register("globex")["authsec_status"] == "pending"
    with schema_context("tenant_acme"):
        endpoint = Application.objects.get(slug="demo-oauth")  # for clients that start OAuth on a 401
        assert endpoint.auth_mode == Application.AuthMode.BEARER
        assert set(endpoint.tool_policies.values_list("tool_name", flat=True)) == set(DEMO_POLICIES)
        # An admin closing registration in the demo is put back by the next run (audited both times).
        set_dynamic_registration(actor="tests", mode=ProviderSettings.Registration.CLOSED)
        call_command("seed_demo")
        assert ProviderSettings.current().dynamic_registration == ProviderSettings.Registration.OPEN
        changes = AuditEvent.objects.filter(action="oauth.provider_settings_changed").order_by("id")
        modes = [event.data["changes"]["dynamic_registration"] for event in changes][-2:]
        assert modes == [{"before": "open", "after": "closed"}, {"before": "closed", "after": "open"}]
