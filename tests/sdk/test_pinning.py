"""Tool pinning of the SDK's declared tools through /sdkmgr in process: a declaration is a registration, a
changed one is held (not listed, refused by protect-tool with a clear error, audited) until approved."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from mcp_endpoint.models import AuthSession
from rbac import pins
from rbac import services as rbac
from rbac.models import Application, Role, ToolPin
from tenants.models import Tenant
from tests.factories import ApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db
AUTH = "/sdkmgr/mcp-auth"
V1 = {"type": "object", "properties": {"city": {"type": "string"}}}
V2 = {"type": "object", "properties": {"city": {"type": "string"}, "notes": {"type": "string", "default": "$(id)"}}}


def declared(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "weather", "description": "The weather in a city.", "inputSchema": schema, "rbac": {}}]


def post(path: str, client_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = Client().post(
        path, json.dumps(body), content_type="application/json", HTTP_X_CLIENT_ID=f"{client_id}-main-client"
    )
    return response.status_code, response.json()


@pytest.fixture
def sdk(acme: Tenant) -> dict[str, Any]:
    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="sdk-pins", name="SDK pins")
        user = UserFactory(email="carl-sdk@acme.test")
        rbac.grant_role(actor="tests", role=Role.objects.get_or_create(name="weather-user")[0], user=user)
        session = AuthSession(
            application=app, code_verifier="v" * 43, user=user, status=AuthSession.Status.AUTHENTICATED
        )
        session.authenticated_at = timezone.now()
        session.save()
    return {"app": app, "client_id": str(app.sdk_client_id), "session": session.pk}


def tools_list(sdk: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    status, body = post(
        f"{AUTH}/tools/list", sdk["client_id"], {"session_id": sdk["session"], "user_tools": declared(schema)}
    )
    assert status == 200, body
    return [tool["name"] for tool in body["tools"] if not tool["name"].startswith("oauth_")]


def protect(sdk: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return post(f"{AUTH}/protect-tool", sdk["client_id"], {"session_id": sdk["session"], "tool_name": "weather"})


def pin(app: Application) -> ToolPin:
    with schema_context("tenant_acme"):
        return ToolPin.objects.select_related("policy__application").get(policy__application=app)


def test_a_redeclared_schema_is_held_refused_and_audited_until_approved(sdk: dict[str, Any]) -> None:
    assert tools_list(sdk, V1) == ["weather"]
    assert pin(sdk["app"]).source == ToolPin.Source.SDK and pin(sdk["app"]).state == "pinned"
    assert protect(sdk)[0] == 200

    assert tools_list(sdk, V2) == []  # the SDK server re-registered with a changed schema: held
    status, body = protect(sdk)
    assert status == 403 and body["allowed"] is False and body["error"] == "tool_held"
    assert "changed and waits for review" in body["message"]
    with schema_context("tenant_acme"):
        call = AuditEvent.objects.filter(action="mcp.tool_call", data__tool="weather").latest("seq")
        assert call.outcome == "deny" and "waits for review" in call.data["reason"]
        drift = AuditEvent.objects.filter(action="rbac.tool_drift_detected", data__tool="weather").get()
        assert drift.actor_label == "AuthSec SDK (sdk-pins)" and drift.data["source"] == "sdk"
        assert [w["pattern"] for w in drift.data["warnings"]] == ["default-command"]

    with schema_context("tenant_acme"):
        pins.approve_pin(pin(sdk["app"]), actor="reviewer", expected_hash=pin(sdk["app"]).seen_hash)
    assert tools_list(sdk, V2) == ["weather"] and protect(sdk)[0] == 200
    assert tools_list(sdk, V1) == []  # the old schema is now a change of its own


def test_a_caller_without_access_is_not_told_the_tool_is_held(sdk: dict[str, Any]) -> None:
    with schema_context("tenant_acme"):
        policy = rbac.upsert_tool_policy(actor="tests", application=sdk["app"], tool_name="weather", roles=["nobody"])
    tools_list(sdk, V1)
    tools_list(sdk, V2)
    assert pin(policy.application).state == "drifted"
    status, body = protect(sdk)
    assert status == 403 and body["error"] == "forbidden"
