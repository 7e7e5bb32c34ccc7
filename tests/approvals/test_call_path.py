"""The approval gate on tools/call, per protocol revision, with the real `mcp` client against the live server.

carol (deployer) calls `deploy_production`, whose policy asks for approval by someone holding `admin`; alice
(admin) decides through `approvals.services.decide` (the page itself is driven in Chromium in
tests/browser/test_approvals.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from django.utils import timezone
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from accounts.models import User
from approvals import services as approvals
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from mcp_endpoint.bearer import bump_config_version
from rbac.models import ToolPolicy
from tests.support.live import LiveServer
from tests.support.mcp import JSON_RPC, Committed, commit_in_acme, url

TOOL = "deploy_production"
pytestmark = pytest.mark.django_db

URL_RE = re.compile(r"http://\S+/t/acme/approvals/([0-9a-f-]{36})/")


@pytest.fixture(scope="module")
def gated(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    def configure(mode: str) -> None:
        ToolPolicy.objects.filter(application__slug="demo", tool_name=TOOL).update(
            approval=mode, approval_role="admin" if mode != "none" else "", approval_window=0
        )
        bump_config_version()  # `update` sends no signal: tell the server's processes

    with django_db_blocker.unblock():
        commit_in_acme(lambda: configure("others"))
        yield
        commit_in_acme(lambda: configure("none"))


@pytest.fixture
def carol_token(tokens, gated) -> str:  # type: ignore[no-untyped-def]
    return tokens("carol@acme.test")


def decide(approval_id: str, email: str = "alice@acme.test", approve: bool = True) -> str:
    def run() -> str:
        request = ApprovalRequest.objects.get(pk=approval_id)
        return approvals.decide(request, User.objects.get(email=email), approve).status

    return commit_in_acme(run)


def acme_read(read: Any) -> Any:
    return commit_in_acme(read)


def _client(endpoint: str, token: str, **kwargs: Any) -> tuple[httpx2.AsyncClient, Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return http, Client(streamable_http_client(endpoint, http_client=http), cache=None, **kwargs)


def _approval_of(text: str) -> str:
    found = URL_RE.search(text)
    assert found, text
    return found.group(1)


def _tool_call_events(approval_id: str) -> list[tuple[str, str]]:
    def read() -> list[tuple[str, str]]:
        rows = AuditEvent.objects.filter(action="mcp.tool_call", data__approval_id=approval_id).order_by("seq")
        return [(row.outcome, row.data["reason"]) for row in rows]

    return acme_read(read)


def _wait_for_audit(approval_id: str, count: int) -> list[tuple[str, str]]:
    # MCP tool-call events go through the audit pipeline (written off the request path).
    import time

    deadline = time.monotonic() + 15
    events: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        events = _tool_call_events(approval_id)
        if len(events) >= count:
            return events
        time.sleep(0.2)
    return events


# --- 2026-07-28: input-required result with URL-mode elicitation ----------------------------------------------------


def test_modern_client_gets_input_required_and_the_result_once_approved(
    asgi_server: LiveServer, carol_token: str
) -> None:
    seen: list[types.ElicitRequestURLParams] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        seen.append(params)
        await anyio.to_thread.run_sync(decide, _approval_of(params.url))
        return types.ElicitResult(action="accept")

    async def main() -> types.CallToolResult:
        http, client = _client(url(asgi_server), carol_token, elicitation_callback=elicit)
        async with http, client:
            assert client.protocol_version == "2026-07-28"
            return await client.call_tool(TOOL, {"version": "1.2.3"})

    result = anyio.run(main)
    assert result.is_error is False and result.content[0].text == "Deployment initiated"
    assert len(seen) == 1 and seen[0].mode == "url" and "/t/acme/approvals/" in seen[0].url
    approval_id = _approval_of(seen[0].url)
    assert acme_read(lambda: ApprovalRequest.objects.get(pk=approval_id).status) == "used"
    events = _wait_for_audit(approval_id, 2)
    assert events[0][0] == "deny" and events[0][1].endswith("; approval pending")
    assert events[-1][0] == "allow" and events[-1][1].endswith("approved")


def test_modern_retry_reports_a_denial(asgi_server: LiveServer, carol_token: str) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.to_thread.run_sync(lambda: decide(_approval_of(params.url), approve=False))
        return types.ElicitResult(action="accept")

    async def main() -> types.CallToolResult:
        http, client = _client(url(asgi_server), carol_token, elicitation_callback=elicit)
        async with http, client:
            return await client.call_tool(TOOL, {"version": "denied"})

    result = anyio.run(main)
    assert result.is_error is True
    assert "was denied by alice@acme.test" in result.content[0].text and "did not run" in result.content[0].text


def test_modern_state_does_not_cover_changed_arguments(asgi_server: LiveServer, carol_token: str) -> None:
    async def main() -> tuple[Any, Any]:
        async def never(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            return types.ElicitResult(action="accept")

        http, client = _client(url(asgi_server), carol_token, elicitation_callback=never)
        async with http, client:
            first = await client.session.call_tool(TOOL, {"version": "a"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            elicit = first.input_requests["authsec_approval"]
            approval_id = _approval_of(elicit.params.url)
            await anyio.to_thread.run_sync(decide, approval_id)
            try:
                changed = await client.session.call_tool(
                    TOOL, {"version": "b"}, request_state=first.request_state, allow_input_required=True
                )
            except MCPError as exc:
                changed = exc
            same = await client.session.call_tool(
                TOOL, {"version": "a"}, request_state=first.request_state, allow_input_required=True
            )
            return changed, same

    changed, same = anyio.run(main)
    assert isinstance(changed, MCPError) and changed.error.code == types.INVALID_PARAMS
    assert same.content[0].text == "Deployment initiated"


def test_modern_replayed_state_after_use_asks_again(asgi_server: LiveServer, carol_token: str) -> None:
    async def main() -> tuple[Any, Any]:
        async def accept(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            return types.ElicitResult(action="accept")

        http, client = _client(url(asgi_server), carol_token, elicitation_callback=accept)
        async with http, client:
            first = await client.session.call_tool(TOOL, {"version": "once"}, allow_input_required=True)
            await anyio.to_thread.run_sync(decide, _approval_of(first.input_requests["authsec_approval"].params.url))
            ran = await client.session.call_tool(
                TOOL, {"version": "once"}, request_state=first.request_state, allow_input_required=True
            )
            replayed = await client.session.call_tool(
                TOOL, {"version": "once"}, request_state=first.request_state, allow_input_required=True
            )
            return ran, replayed, first

    ran, replayed, first = anyio.run(main)
    assert ran.content[0].text == "Deployment initiated"
    assert isinstance(replayed, types.InputRequiredResult)  # the used approval covers nothing: a new request
    new_url = replayed.input_requests["authsec_approval"].params.url
    assert _approval_of(new_url) != _approval_of(first.input_requests["authsec_approval"].params.url)


def test_modern_client_without_url_elicitation_gets_the_url_as_an_error(
    asgi_server: LiveServer, carol_token: str
) -> None:
    async def main() -> types.CallToolResult:
        http, client = _client(url(asgi_server), carol_token)
        async with http, client:
            assert client.protocol_version == "2026-07-28"
            return await client.call_tool(TOOL, {"version": "no-elicitation"})

    result = anyio.run(main)
    assert result.is_error and "/t/acme/approvals/" in result.content[0].text


def test_modern_retry_reports_expiry(asgi_server: LiveServer, carol_token: str) -> None:
    async def main() -> Any:
        async def accept(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            approval_id = _approval_of(params.url)

            def expire() -> None:
                ApprovalRequest.objects.filter(pk=approval_id).update(
                    expires_at=timezone.now() - dt.timedelta(seconds=1)
                )

            await anyio.to_thread.run_sync(commit_in_acme, expire)
            return types.ElicitResult(action="accept")

        http, client = _client(url(asgi_server), carol_token, elicitation_callback=accept)
        async with http, client:
            return await client.call_tool(TOOL, {"version": "late"})

    result = anyio.run(main)
    assert result.is_error is True and "expired before anyone approved it" in result.content[0].text


# --- 2025-11-25 (handshake) --------------------------------------------------------------------------------------


def test_handshake_client_with_url_elicitation_gets_elicitation_create_then_the_result(
    asgi_server: LiveServer, carol_token: str
) -> None:
    seen: list[Any] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params)
        await anyio.to_thread.run_sync(decide, _approval_of(params.url))
        return types.ElicitResult(action="accept")

    async def main() -> types.CallToolResult:
        http, client = _client(url(asgi_server), carol_token, elicitation_callback=elicit, mode="legacy")
        async with http, client:
            assert client.protocol_version == "2025-11-25"
            return await client.call_tool(TOOL, {"version": "handshake"})

    result = anyio.run(main)
    assert result.is_error is False and result.content[0].text == "Deployment initiated"
    assert seen and seen[0].mode == "url" and seen[0].elicitation_id == _approval_of(seen[0].url)


def test_handshake_client_without_elicitation_gets_the_url_and_the_identical_call_runs_once(
    asgi_server: LiveServer, carol_token: str
) -> None:
    async def main() -> list[Any]:
        http, client = _client(url(asgi_server), carol_token, mode="legacy")
        results = []
        async with http, client:
            first = await client.call_tool(TOOL, {"version": "plain"})
            results.append(first)
            approval_id = _approval_of(first.content[0].text)
            assert (await client.call_tool(TOOL, {"version": "plain"})).is_error  # not approved yet: same request
            await anyio.to_thread.run_sync(decide, approval_id)
            results.append(await client.call_tool(TOOL, {"version": "other"}))  # changed arguments
            results.append(await client.call_tool(TOOL, {"version": "plain"}))  # approved: runs
            results.append(await client.call_tool(TOOL, {"version": "plain"}))  # replayed: single use
        return results

    first, changed, approved, replayed = anyio.run(main)
    assert first.is_error and "call deploy_production again with the same arguments" in first.content[0].text.lower()
    assert changed.is_error and _approval_of(changed.content[0].text) != _approval_of(first.content[0].text)
    assert approved.is_error is False and approved.content[0].text == "Deployment initiated"
    assert replayed.is_error and _approval_of(replayed.content[0].text) != _approval_of(first.content[0].text)


def _set_window(seconds: int) -> None:
    ToolPolicy.objects.filter(application__slug="demo", tool_name=TOOL).update(approval_window=seconds)


def test_approval_window_covers_identical_calls(asgi_server: LiveServer, carol_token: str) -> None:
    commit_in_acme(lambda: _set_window(600))
    try:

        async def main() -> list[Any]:
            http, client = _client(url(asgi_server), carol_token, mode="legacy")
            async with http, client:
                first = await client.call_tool(TOOL, {"version": "window"})
                await anyio.to_thread.run_sync(decide, _approval_of(first.content[0].text))
                return [await client.call_tool(TOOL, {"version": "window"}) for _ in range(3)]

        results = anyio.run(main)
    finally:
        commit_in_acme(lambda: _set_window(0))
    assert [r.content[0].text for r in results] == ["Deployment initiated"] * 3


# --- 2025-06-18 (raw JSON-RPC: the client library speaks 2025-11-25) ------------------------------------------------


def _rpc(http: httpx2.Client, endpoint: str, body: dict[str, Any], session: str | None) -> httpx2.Response:
    headers = {**JSON_RPC, "MCP-Protocol-Version": "2025-06-18"}
    if session:
        headers["mcp-session-id"] = session
    return http.post(endpoint, json=body, headers=headers)


def test_2025_06_18_client_gets_an_error_result_with_the_url(asgi_server: LiveServer, carol_token: str) -> None:
    endpoint = url(asgi_server)
    with httpx2.Client(headers={"Authorization": f"Bearer {carol_token}"}, timeout=30) as http:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        answer = http.post(endpoint, json=init, headers=JSON_RPC)
        assert answer.json()["result"]["protocolVersion"] == "2025-06-18"
        session = answer.headers["mcp-session-id"]
        _rpc(http, endpoint, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": TOOL, "arguments": {"v": 1}}}
        first = _rpc(http, endpoint, call, session).json()["result"]
        assert first["isError"] is True
        decide(_approval_of(first["content"][0]["text"]))
        second = _rpc(http, endpoint, {**call, "id": 3}, session).json()["result"]
    assert second["isError"] is False and json.dumps(second["content"]).count("Deployment initiated") == 1
