"""The tool registry, the seed's decorator, and seeding ToolPolicy rows from code."""

from __future__ import annotations

import anyio
import pytest

from mcp_endpoint.registry import InvalidArguments, Registry, ensure_loaded, protected_by_AuthSec, registry
from mcp_endpoint.services import seed_tool_policies
from rbac import services as rbac_services
from rbac.demo import DEMO_POLICIES
from rbac.engine import KINDS
from rbac.models import ToolPolicy
from tenants.models import Tenant
from tests.factories import ApplicationFactory


def test_demo_tools_declare_the_rbac_demo_policies() -> None:
    ensure_loaded()
    for name, spec in DEMO_POLICIES.items():
        declared = registry.get(name).requirement
        assert declared == {
            **{kind: sorted(spec.get(kind, [])) for kind in KINDS},
            "require_all": spec.get("require_all", False),
        }


def test_seed_style_tool_gets_arguments_and_user_info() -> None:
    local = Registry()

    @protected_by_AuthSec("greet", roles=["admin"], inputSchema={"type": "object"}, target=local)
    async def greet(arguments: dict) -> list:
        return [{"type": "text", "text": f"hi {arguments['_user_info']['email']} {arguments['x']}"}]

    tool = local.get("greet")
    assert tool.requirement["roles"] == ["admin"] and not tool.typed
    content = anyio.run(tool.run, {"x": 1}, {"email": "a@b.test"}, None)
    assert content == [{"type": "text", "text": "hi a@b.test 1"}]


def test_seed_style_tool_may_ask_for_the_session() -> None:
    local = Registry()

    @protected_by_AuthSec("with_session", target=local)
    async def with_session(arguments: dict, session) -> list:  # type: ignore[no-untyped-def]
        return [{"type": "text", "text": session}]

    assert anyio.run(local.get("with_session").run, {}, {}, "the-session") == [{"type": "text", "text": "the-session"}]


def test_typed_tool_gets_a_schema_from_its_hints_and_validated_arguments() -> None:
    local = Registry()

    @protected_by_AuthSec("add", target=local)
    async def add(a: int, b: int = 2) -> str:
        return str(a + b)

    tool = local.get("add")
    assert tool.input_schema["required"] == ["a"]
    assert set(tool.input_schema["properties"]) == {"a", "b"}
    assert anyio.run(tool.run, tool.validate({"a": "40"}), {}, None) == [{"type": "text", "text": "42"}]
    with pytest.raises(InvalidArguments, match="Invalid arguments for tool add: a: "):
        tool.validate({"a": "many"})


def test_schema_validation_names_the_problem() -> None:
    ensure_loaded()
    with pytest.raises(InvalidArguments) as exc:
        registry.get("create_resource").validate({"name": 5})
    assert str(exc.value) == "Invalid arguments for tool create_resource: name: 5 is not of type 'string'"


def test_decorator_refuses_sync_functions_and_string_lists() -> None:
    with pytest.raises(TypeError, match="async"):

        @protected_by_AuthSec("sync_tool", target=Registry())
        def sync_tool(arguments: dict) -> list:
            return []

    with pytest.raises(TypeError, match="list of names"):
        protected_by_AuthSec("bad", roles="admin")  # type: ignore[arg-type]


def test_a_name_cannot_be_taken_twice() -> None:
    local = Registry()

    @protected_by_AuthSec("dup", target=local)
    async def first(arguments: dict) -> list:
        return []

    with pytest.raises(ValueError, match="already registered"):

        @protected_by_AuthSec("dup", target=local)
        async def second(arguments: dict) -> list:
            return []


def test_seeding_creates_missing_policies_and_keeps_admin_edits(in_acme: Tenant) -> None:
    ensure_loaded()
    app = ApplicationFactory(slug="seeded", name="Seeded")
    rbac_services.upsert_tool_policy(actor="tests", application=app, tool_name="admin_panel", roles=["manager"])
    created = seed_tool_policies(actor="tests", application=app, tools=["admin_panel", "view_analytics"])
    assert created == ["view_analytics"]
    assert ToolPolicy.objects.get(application=app, tool_name="admin_panel").roles == ["manager"]  # the admin's edit
    analytics = ToolPolicy.objects.get(application=app, tool_name="view_analytics")
    assert (analytics.scopes, analytics.resources, analytics.require_all) == (["read"], ["analytics"], True)
    assert seed_tool_policies(actor="tests", application=app, tools=["view_analytics"]) == []
