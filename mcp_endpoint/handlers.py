"""The MCP request handlers of the hosted endpoint: tools/list and tools/call (and the seed's login tools).

They run after the gate (`mcp_endpoint.gate`) has admitted the request and put its `RequestAuth` in the ASGI
scope's state. They filter and enforce with the one RBAC function (`rbac.engine.decide` / `filter_tools`) over
the application's `ToolPolicy` rows ∩ registered tools, through `rbac.principal` (`visible`, `authorize`),
which holds the one scope narrowing of a bearer token. A call is decided once: a decision the gate made for
this request's body (a scope-limited token) is reused here.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.shared.exceptions import MCPError

from audit import enqueue, queued_actor, queued_event
from audit.recorder import Actor
from authsec_site.lib import metrics, tracing
from mcp_endpoint import approval, login, pinning
from mcp_endpoint.bearer import RequestAuth
from mcp_endpoint.login import LOGIN_MODES, LOGIN_TOOLS
from mcp_endpoint.registry import InvalidArguments, ToolError, registry
from rbac.engine import Decision
from rbac.principal import Authorization, authorize, visible

logger = logging.getLogger(__name__)

UNKNOWN = Authorization(Decision(False, "unknown tool"))


class ToolSession:
    """What a tool that asks for ``session`` receives: who calls, where (ServiceAccessSDK takes this)."""

    def __init__(self, auth: RequestAuth, mcp_session: Any, tool: str | None = None, request_id: str = "") -> None:
        self.tenant_id = auth.tenant.slug
        self.schema_name = auth.tenant.schema_name
        self.application = auth.app.slug
        self._principal = auth.principal
        self.tool = tool
        self.request_id = request_id
        self.mcp_session = mcp_session

    @property
    def user_info(self) -> dict[str, Any] | None:
        """The caller's `_user_info` (a fresh copy; built only for tools that use it)."""
        return self._principal.user_info() if self._principal else None


def _auth(ctx: Any) -> RequestAuth:
    return ctx.request.scope["state"]["authsec"]


ANONYMOUS = Actor("anonymous", "", "anonymous")
_ANONYMOUS_QUEUED = queued_actor(ANONYMOUS)


def _actor(auth: RequestAuth) -> Any:
    return ANONYMOUS if auth.principal is None else auth.principal.audit_actor


def _audit(ctx: Any, auth: RequestAuth, action: str, outcome: str, data: dict[str, Any]) -> None:
    """Queue an audit event of this request (written off the request path: `audit.enqueue`)."""
    principal = auth.principal
    enqueue(
        queued_event(
            auth.tenant.schema_name,
            _ANONYMOUS_QUEUED if principal is None else principal.audit_wire,
            action,
            outcome,
            data,
            ("rbac.application", "", auth.app.slug),
            ctx.request.scope["state"]["authsec_context"],
        )
    )


def visible_tools(auth: RequestAuth) -> list[str]:
    """Tools this caller may see: the application's policy rows ∩ registered tools, filtered by the engine."""
    held = auth.app.pins.held
    served = [name for name in auth.app.policies if name in registry and name not in LOGIN_TOOLS and name not in held]
    shown = set(visible(auth.principal, auth.app.policies, served))
    return sorted(shown | LOGIN_TOOLS if auth.app.auth_mode in LOGIN_MODES else shown)


def _mcp_tool(name: str) -> types.Tool | None:
    if name in LOGIN_TOOLS:
        return next(tool for tool in login.MCP_TOOLS if tool.name == name)
    return registry.mcp_tool(name)


MAX_LISTINGS = 1024  # per application's settings: distinct grant sets seen while those settings last


def listed_tools(auth: RequestAuth) -> list[types.Tool]:
    """The MCP tools of `visible_tools`, kept per grant set on the application's settings object.

    Both inputs are immutable and replaced on every change (the settings on a config version change, a
    principal's grants on an RBAC version change), and the registry's generation is part of the key, so a kept
    list is exactly what `visible_tools` would give on this request; over 1,000 tools it saved ≈ 0.75 ms."""
    grants = auth.principal.grants if auth.principal else None
    key = (grants, registry.generation)
    listings = auth.app.listings
    tools = listings.get(key)
    if tools is None:
        tools = [tool for tool in (_mcp_tool(name) for name in visible_tools(auth)) if tool is not None]
        if len(listings) >= MAX_LISTINGS:
            listings.clear()
        listings[key] = tools
    return tools


def _attach(ctx: Any) -> None:
    """Keep this MCP session's handle (handshake-era sessions only) for later list_changed notifications."""
    state = ctx.request.scope["state"]
    if state["authsec_mcp_session"]:
        state["authsec_live"].attach(state["authsec_mcp_session"], ctx.session)


async def _list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    auth = _auth(ctx)
    _attach(ctx)
    tools = listed_tools(auth)
    _audit(ctx, auth, "mcp.tools_listed", "success", {"application": auth.app.slug, "count": len(tools)})
    metrics.tools_listed(auth.tenant.slug, auth.app.slug, len(tools))
    return types.ListToolsResult(tools=tools)


MAX_LOGGED_ARGUMENTS = 4096


def _logged_arguments(arguments: dict[str, Any] | None) -> dict[str, Any]:
    """A call's arguments for the audit log (policy `log_arguments`): as sent, without the injected
    `_user_info`, at most `MAX_LOGGED_ARGUMENTS` bytes of JSON (else only the size). `audit.record` redacts
    values under secret-looking keys."""
    logged = {key: value for key, value in (arguments or {}).items() if key != "_user_info"}
    size = len(json.dumps(logged, default=str))
    return logged if size <= MAX_LOGGED_ARGUMENTS else {"truncated": True, "json_bytes": size}


def _elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `perf_counter` reading), to the microsecond (`round(x, 3)` costs ten
    times as much, through a decimal string)."""
    return round((time.perf_counter() - started) * 1_000_000) / 1000


def _authorization(ctx: Any, auth: RequestAuth, name: str) -> Authorization:
    """The decision of a call of `name`: the one the gate made for this request's body (a scope-limited token,
    `gate._missing_scopes`), else made now."""
    decided = ctx.request.scope["state"].get("authsec_decided")
    found = decided.get(name) if decided else None
    return found if found is not None else authorize(auth.principal, auth.app.policies.get(name))


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult | types.InputRequiredResult:
    started = time.perf_counter()
    auth = _auth(ctx)
    _attach(ctx)
    name = params.name
    if name in LOGIN_TOOLS and auth.app.auth_mode in LOGIN_MODES:
        return await _call_login_tool(ctx, auth, name, dict(params.arguments or {}), started)
    tool = registry.get(name) if name not in LOGIN_TOOLS else None
    decision = UNKNOWN if tool is None else _authorization(ctx, auth, name)
    approval_id = ""

    def audit(outcome: str, reason: str) -> None:
        data: dict[str, Any] = {
            "application": auth.app.slug,
            "tool": name,
            "reason": reason,
            "duration_ms": _elapsed_ms(started),
        }
        if approval_id:
            data["approval_id"] = approval_id
        if name in auth.app.log_arguments:
            data["arguments"] = _logged_arguments(params.arguments)
        _audit(ctx, auth, "mcp.tool_call", outcome, data)
        metrics.tool_call(auth.tenant.slug, auth.app.slug, tool and name, outcome, reason != decision.reason, started)

    if not decision.allowed or auth.principal is None:
        audit("deny", decision.reason)
        # A hidden tool answers exactly like a tool that does not exist.
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}")
    if name in auth.app.pins.held:  # to a caller who may use it: changed, waits for an admin's review
        audit("deny", f"{decision.reason}; {pinning.HELD_REASON}")
        raise MCPError(code=types.INVALID_PARAMS, message=pinning.held_message(name))
    arguments = params.arguments or {}
    if "_user_info" in arguments:  # never the caller's: the endpoint injects the verified one
        arguments = {k: v for k, v in arguments.items() if k != "_user_info"}
    try:
        arguments = tool.validate(arguments)
    except InvalidArguments as exc:
        audit("allow", f"{decision.reason}; invalid arguments")
        raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
    if name in auth.app.approvals:  # a person approves these calls first (mcp_endpoint.approval)
        gate = await approval.check(ctx, auth, params, arguments)
        approval_id = gate.approval_id
        if gate.result is not None:
            audit("deny", f"{decision.reason}; {gate.reason}")
            return gate.result
        decision = Authorization(Decision(True, f"{decision.reason}; {gate.reason}"))
    try:
        # Built only for a handler that takes them (a fresh `_user_info` copy per call is not free).
        user_info = auth.principal.user_info() if tool.takes_user_info else None
        session = None
        if tool.takes_session:
            request_id = ctx.request.scope["state"]["authsec_context"].request_id
            session = ToolSession(auth, ctx.session, name, request_id)
        content = await tool.run(arguments, user_info, session)
        result = types.CallToolResult.model_validate({"content": content, "isError": False})
        reason = decision.reason
    except ToolError as exc:
        result, reason = _error_result(str(exc)), f"{decision.reason}; tool error"
    except Exception:
        logger.exception("MCP tool %s of %s/%s failed", name, auth.tenant.slug, auth.app.slug)
        result = _error_result(f"The tool {name} failed. The error was logged on the server.")
        reason = f"{decision.reason}; tool failed"
    audit("allow", reason)
    return result


_run_login_tool = sync_to_async(login.run_tool)


async def _call_login_tool(
    ctx: Any, auth: RequestAuth, name: str, arguments: dict[str, Any], started: float
) -> types.CallToolResult:
    """The seed's login tools: callable by anyone (they are how a caller gets an identity)."""
    reason = "login tool"
    try:
        state = ctx.request.scope["state"]
        content = await _run_login_tool(
            name,
            arguments,
            auth,
            _actor(auth),
            mcp_session_id=state["authsec_mcp_session"],
            origin=state["authsec_context"],
        )
        result = types.CallToolResult.model_validate({"content": content, "isError": False})
    except login.LoginToolError as exc:
        result, reason = _error_result(str(exc)), "login tool; error"
    except Exception:
        logger.exception("MCP login tool %s of %s/%s failed", name, auth.tenant.slug, auth.app.slug)
        result, reason = (
            _error_result(f"The tool {name} failed. The error was logged on the server."),
            "login tool; failed",
        )
    data = {
        "application": auth.app.slug,
        "tool": name,
        "reason": reason,
        "duration_ms": _elapsed_ms(started),
    }
    _audit(ctx, auth, "mcp.tool_call", "allow", data)
    metrics.tool_call(auth.tenant.slug, auth.app.slug, name, "allow", reason != "login tool", started)
    return result


class _Server(Server[Any]):
    """The low-level server, advertising ``tools.listChanged`` on handshake-era sessions (we send it on login)."""

    def create_initialization_options(self, notification_options: NotificationOptions | None = None, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), *args, **kwargs
        )


def build_server() -> Server[Any]:
    server = _Server(
        "authsec",
        version="0.1.0",
        instructions="AuthSec Server hosted MCP endpoint.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        # No Mcp-Param header validation against tool schemas: a lookup here has no caller, and answering for
        # hidden tools would reveal that they exist (the default falls back to a tools/list per call).
        get_tool_input_schema=lambda name: None,
    )
    if not tracing.ENABLED:
        # The SDK wraps every message in its OpenTelemetry span (`mcp.server._otel`), a no-op tracer's span when
        # nothing is set up, which still costs ≈ N instructions per call (docs/benchmarks.md): tracing off is off.
        server.middleware = [m for m in server.middleware if type(m).__module__ != "mcp.server._otel"]
    # requestState of input-required results (approvals, 2026-07-28) is sealed and checked at the wire.
    server.middleware.append(approval.request_state_boundary())
    return server
