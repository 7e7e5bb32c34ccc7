"""The MCP handlers in-process: a failing tool gives a safe isError result and a server log line."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from audit.context import RequestContext
from audit.pipeline import queue
from audit.pipeline.wire import QueuedEvent, decode_batch, encode_event, pack_batch
from mcp_endpoint import handlers
from mcp_endpoint.bearer import AppConfig, Principal, RequestAuth, TenantRef
from mcp_endpoint.registry import protected_by_AuthSec, registry
from rbac.engine import Grants, Requirement


class Collector:
    """Stands in for the process's audit queue: keeps what the handlers enqueue, as the wire carries it and
    decoded."""

    def __init__(self) -> None:
        self.wires: list[list[Any]] = []
        self.events: list[QueuedEvent] = []

    def put(self, wire: list[Any]) -> None:
        self.wires.append(wire)
        self.events.append(QueuedEvent.from_wire(wire))


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch) -> Collector:
    collector = Collector()
    monkeypatch.setattr(queue, "current", collector)
    return collector


@pytest.fixture
def crashing_tool() -> Any:
    @protected_by_AuthSec("crashes_for_test", inputSchema={"type": "object"})
    async def crashes_for_test(arguments: dict) -> list:
        raise RuntimeError("db password is hunter2")

    yield "crashes_for_test"
    registry.remove("crashes_for_test")


def _ctx() -> Any:
    auth = RequestAuth(
        tenant=TenantRef("acme", "tenant_acme", None),
        app=AppConfig("demo", "Demo", "both", {"crashes_for_test": Requirement.of()}, "http://x/t/acme/mcp/demo"),
        principal=Principal(7, "alice@acme.test", "acme", Grants.of(roles=["admin"])),
    )
    state = {
        "authsec": auth,
        "authsec_mcp_session": "",
        "authsec_context": RequestContext(request_id="req-1", ip="127.0.0.1"),
    }
    request = SimpleNamespace(scope={"state": state, "client": ("127.0.0.1", 1)}, headers={})
    return SimpleNamespace(request=request, session=None)


def test_a_failing_tool_gives_a_safe_error_and_a_log_line(
    crashing_tool: str, writer: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    params = SimpleNamespace(name=crashing_tool, arguments={})
    with caplog.at_level(logging.ERROR, logger="mcp_endpoint.handlers"):
        result = anyio.run(handlers._call_tool, _ctx(), params)
    assert result.is_error
    assert result.content[0].text == "The tool crashes_for_test failed. The error was logged on the server."
    assert "hunter2" not in result.content[0].text
    assert "MCP tool crashes_for_test of acme/demo failed" in caplog.text
    [event] = writer.events
    assert (event.action, event.outcome) == ("mcp.tool_call", "allow")
    assert event.data["reason"] == "allowed: any authenticated user; tool failed"


def test_the_events_of_a_call_take_the_compact_format_on_the_pipe_and_come_back_the_same(
    crashing_tool: str, writer: Collector
) -> None:
    anyio.run(handlers._call_tool, _ctx(), SimpleNamespace(name=crashing_tool, arguments={}))
    with pytest.raises(MCPError, match="Unknown tool"):  # audited as a denial first
        anyio.run(handlers._call_tool, _ctx(), SimpleNamespace(name="no_such_tool", arguments={}))
    assert [event.outcome for event in writer.events] == ["allow", "deny"]
    blobs = [encode_event(wire) for wire in writer.wires]
    assert [blob[:1] for blob in blobs] == [b"M", b"M"]  # the actor's str-enum type and the rest: exact core types
    back = decode_batch(pack_batch(blobs))
    assert [event.to_wire() for event in back] == writer.wires
    assert back[0].actor == writer.events[0].actor and back[0].actor.type == "user"
    assert back[0].context == RequestContext(request_id="req-1", ip="127.0.0.1")


def test_a_listing_is_kept_per_grant_set_and_not_past_a_change_of_grants_or_tools() -> None:
    app = AppConfig(
        "demo",
        "Demo",
        "bearer",
        {"listing_admin_for_test": Requirement.of(roles=["admin"]), "listing_later_for_test": Requirement.of()},
        "http://x/t/acme/mcp/demo",
    )
    tenant = TenantRef("acme", "tenant_acme", None)

    def names(roles: list[str]) -> list[str]:
        principal = Principal(7, "alice@acme.test", "acme", Grants.of(roles=roles))
        return [tool.name for tool in handlers.listed_tools(RequestAuth(tenant, app, principal))]

    @protected_by_AuthSec("listing_admin_for_test", inputSchema={"type": "object"})
    async def listing_admin_for_test(arguments: dict) -> list:
        return []

    try:
        admin = Principal(7, "alice@acme.test", "acme", Grants.of(roles=["admin"]))
        first = handlers.listed_tools(RequestAuth(tenant, app, admin))
        assert [tool.name for tool in first] == ["listing_admin_for_test"]
        assert handlers.listed_tools(RequestAuth(tenant, app, admin)) is first  # kept: computed once
        # Another principal with equal grants shares it; other grants get their own answer.
        assert names(["admin"]) == ["listing_admin_for_test"]
        assert names(["viewer"]) == []

        # A tool registered later (its policy row was already there) shows at once.
        @protected_by_AuthSec("listing_later_for_test", inputSchema={"type": "object"})
        async def listing_later_for_test(arguments: dict) -> list:
            return []

        assert names(["admin"]) == ["listing_admin_for_test", "listing_later_for_test"]
        assert names(["viewer"]) == ["listing_later_for_test"]
        registry.remove("listing_admin_for_test")
        assert names(["admin"]) == ["listing_later_for_test"]
    finally:
        registry.remove("listing_admin_for_test")
        registry.remove("listing_later_for_test")
