"""The hosted MCP endpoint: one streamable-HTTP app serving ``/t/<tenant>/mcp/<app>`` for every tenant.

Per request, before any MCP message is handled (`McpEndpoint.handle`): tenant and application are
resolved (unknown or inactive → 404), the bearer token is verified offline (`mcp_endpoint.auth`), and the
application's ``auth_mode`` decides between anonymous access and a 401 challenge. The MCP handlers then
filter and enforce with the one RBAC function (`rbac.engine.decide` / `filter_tools`) over the
application's `ToolPolicy` rows ∩ registered tools, through `rbac.principal` (`visible`, `authorize`), which
holds the one scope narrowing of a bearer token. A call is decided once: for a scope-limited token the gate
decides the calls of the body (to answer a step-up with 403) and the handler reuses that decision. The session
manager is stateless: what a caller sees depends only on the credential on the request, and no MCP session can
move between tenants.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.types import Message, Receive, Scope, Send

from audit import context as audit_context
from audit import enqueue, queued_actor, queued_event
from audit.recorder import Actor
from authsec_site.lib.background import background
from authsec_site.lib.client_ip import scope_ip
from authsec_site.lib.jsonbody import JSONBodyError, check_json
from mcp_endpoint import login, notify
from mcp_endpoint.auth import NotFound, RequestAuth, resolve, resolve_cached
from mcp_endpoint.auth import mirror as auth_mirror
from mcp_endpoint.login import LOGIN_MODES, LOGIN_TOOLS, SESSION_HEADER
from mcp_endpoint.registry import InvalidArguments, ToolError, ensure_loaded, registry
from rbac.engine import Decision
from rbac.principal import Authorization, authorize, visible

logger = logging.getLogger(__name__)

MCP_PATH = re.compile(r"^/t/(?P<tenant>[a-z][a-z0-9-]{0,38}[a-z0-9])/mcp/(?P<app>[a-z0-9][a-z0-9_-]{0,63})$")
MCP_SESSION_HEADER = b"mcp-session-id"
UNKNOWN = Authorization(Decision(False, "unknown tool"))


class _RequestIds:
    """Request ids for the audit trail: unique, not secret. A random per-process prefix and a counter (32 hex
    digits like a UUID) instead of `uuid4`, whose `getrandom` system call was a visible cost per request."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_request_id = _RequestIds()


def resource_metadata_url(tenant: str, app: str) -> str:
    return f"{settings.AUTHSEC_PUBLIC_URL}/.well-known/oauth-protected-resource/t/{tenant}/mcp/{app}"


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
    served = [name for name in auth.app.policies if name in registry and name not in LOGIN_TOOLS]
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
    `_missing_scopes`), else made now."""
    decided = ctx.request.scope["state"].get("authsec_decided")
    found = decided.get(name) if decided else None
    return found if found is not None else authorize(auth.principal, auth.app.policies.get(name))


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    started = time.perf_counter()
    auth = _auth(ctx)
    _attach(ctx)
    name = params.name
    if name in LOGIN_TOOLS and auth.app.auth_mode in LOGIN_MODES:
        return await _call_login_tool(ctx, auth, name, dict(params.arguments or {}), started)
    tool = registry.get(name) if name not in LOGIN_TOOLS else None
    decision = UNKNOWN if tool is None else _authorization(ctx, auth, name)

    def audit(outcome: str, reason: str) -> None:
        data: dict[str, Any] = {
            "application": auth.app.slug,
            "tool": name,
            "reason": reason,
            "duration_ms": _elapsed_ms(started),
        }
        if name in auth.app.log_arguments:
            data["arguments"] = _logged_arguments(params.arguments)
        _audit(ctx, auth, "mcp.tool_call", outcome, data)

    if not decision.allowed or auth.principal is None:
        audit("deny", decision.reason)
        # A hidden tool answers exactly like a tool that does not exist.
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}")
    arguments = params.arguments or {}
    if "_user_info" in arguments:  # never the caller's: the endpoint injects the verified one
        arguments = {k: v for k, v in arguments.items() if k != "_user_info"}
    try:
        arguments = tool.validate(arguments)
    except InvalidArguments as exc:
        audit("allow", f"{decision.reason}; invalid arguments")
        raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
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
    return result


class _Server(Server[Any]):
    """The low-level server, advertising ``tools.listChanged`` on handshake-era sessions (we send it on login)."""

    def create_initialization_options(self, notification_options: NotificationOptions | None = None, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), *args, **kwargs
        )


def build_server() -> Server[Any]:
    return _Server(
        "authsec",
        version="0.1.0",
        instructions="AuthSec Server hosted MCP endpoint.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        # No Mcp-Param header validation against tool schemas: a lookup here has no caller, and answering for
        # hidden tools would reveal that they exist (the default falls back to a tools/list per call).
        get_tool_input_schema=lambda name: None,
    )


def build_session_manager() -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(
        app=build_server(),
        # Handshake-era versions get sessions (Mcp-Session-Id, a standalone stream for list_changed); requests
        # of the stateless 2026-07-28 protocol bypass session tracking inside the manager.
        stateless=False,
        json_response=True,
        session_idle_timeout=float(settings.MCP_SESSION_IDLE_SECONDS),
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(settings.MCP_ALLOWED_HOSTS),
            allowed_origins=list(settings.MCP_ALLOWED_ORIGINS),
        ),
    )


async def _json_response(
    send: Send, status: int, body_data: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(body_data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def _challenge(send: Send, tenant: str, app: str, error: str = "", description: str = "") -> None:
    """401 with the RFC 9728 pointer so standard MCP clients can discover our authorization server."""
    parts = [f'resource_metadata="{resource_metadata_url(tenant, app)}"']
    if error:
        parts.append(f'error="{error}"')
        parts.append(f'error_description="{_quote(description)}"')
    header = ("Bearer " + ", ".join(parts)).encode()
    body = {"error": error or "unauthorized", "error_description": description or "Authentication required."}
    await _json_response(send, 401, body, [(b"www-authenticate", header)])


# The request headers the endpoint reads, collected in one pass (the first of each counts).
_READ_HEADERS = frozenset({b"authorization", MCP_SESSION_HEADER, SESSION_HEADER, b"user-agent", b"content-type"})


def _headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        if key in _READ_HEADERS and key not in found:
            found[key] = value.decode("latin-1").strip()
    return found


# Our access tokens are ≈ 1-2 KB. A longer bearer is refused before it is hashed or cached anywhere (the digest
# and key caches of `mcp_endpoint.auth` hold one entry per distinct token).
MAX_BEARER_LENGTH = 8192


def _bearer(authorization: str | None) -> tuple[str | None, bool]:
    """(token, malformed) from the Authorization header; other schemes count as no credentials. An empty or
    oversized token is malformed."""
    if authorization is None:
        return None, False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None, False
    token = token.strip()
    return (token, False) if token and len(token) <= MAX_BEARER_LENGTH else (None, True)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """The request body, read until its end or until it passes `JSON_MAX_BYTES` (then refused as too large)."""
    messages: list[Message] = []
    body = b""
    limit = settings.JSON_MAX_BYTES
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if len(body) > limit or not message.get("more_body", False):
            break
    return messages, body


def _body_problem(body: bytes) -> str | None:
    """Why a POST body is refused before any parser sees it: over the JSON limits, or a top-level value that
    is not a JSON-RPC message or batch (an object or an array). Cheap on normal requests (`check_json`)."""
    try:
        check_json(body)
    except JSONBodyError as exc:
        return exc.message
    if body.lstrip(b" \t\r\n")[:1] not in (b"{", b"[", b""):
        return "the body must be a JSON-RPC message (an object) or a batch (an array)."
    return None


def _tool_calls(body: bytes) -> list[str]:
    """Names of the tools a request body calls (a JSON-RPC message or a batch); unparsable → none."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    names = []
    for item in payload if isinstance(payload, list) else [payload]:
        if isinstance(item, dict) and item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            names.append(name if isinstance(name, str) else "")
    return names


class McpEndpoint:
    """ASGI app for ``/t/<tenant>/mcp/<app>``; the root router enters `run()` at startup."""

    def __init__(self) -> None:
        ensure_loaded()
        self.session_manager = build_session_manager()
        self.live = notify.LiveSessions(float(settings.MCP_SESSION_IDLE_SECONDS))
        self._resolve = sync_to_async(resolve)
        self._session_principal = sync_to_async(login.principal_for_session)
        self._bound_principal = sync_to_async(login.principal_for_mcp_session)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[McpEndpoint]:
        """The session manager's task group, the notification listener and the cache mirror's subscription,
        for the app's lifetime (inside the root lifespan's audit pipeline, which outlives them)."""
        async with (
            self.session_manager.run(),
            auth_mirror().running(),
            background(notify.listen(self.live)),
        ):
            yield self

    async def handle(self, scope: Scope, receive: Receive, send: Send, tenant: str, app: str) -> None:
        """One HTTP request for the endpoint of `tenant` and `app` (from the path; the root router matched it)."""
        headers = _headers(scope)
        token, malformed = _bearer(headers.get(b"authorization"))
        mcp_session_id = headers.get(MCP_SESSION_HEADER, "")
        if mcp_session_id and not self.live.belongs(mcp_session_id, tenant, app):
            # A session opened at another endpoint is unknown here, exactly like an expired one.
            await _json_response(send, 404, {"jsonrpc": "2.0", "id": None, "error": SESSION_NOT_FOUND}, [])
            return
        try:
            auth = await resolve_cached(tenant, app, token) or await self._resolve(tenant, app, token)
        except NotFound:
            await _json_response(send, 404, {"error": "not_found", "error_description": "No such MCP endpoint."}, [])
            return
        if malformed or auth.token_error:
            description = auth.token_error or "Empty or oversized bearer token."
            await _challenge(send, tenant, app, "invalid_token", description)
            return
        if auth.principal is None and auth.app.auth_mode in LOGIN_MODES:
            session_id = headers.get(SESSION_HEADER, "")
            if session_id:
                # A login-tool session of this tenant and application: act as its user (else stay anonymous).
                auth.principal = await self._session_principal(auth, session_id)
            elif mcp_session_id:
                # A login bound to this MCP session by oauth_start (handshake-era protocols).
                auth.principal = await self._bound_principal(auth, mcp_session_id)
        if auth.principal is None and auth.app.auth_mode == "bearer":
            await _challenge(send, tenant, app)
            return
        decided: dict[str, Authorization] = {}  # tool name → its decision, made by the gate for this body
        if scope.get("method") == "POST":
            if headers.get(b"content-type", "").partition(";")[0].strip().lower() != "application/json":
                # The SDK's transport security would answer a plain-text 400: a JSON-RPC error instead.
                error = {
                    "code": types.INVALID_REQUEST,
                    "message": "Invalid request: Content-Type must be application/json.",
                }
                await _json_response(send, 415, {"jsonrpc": "2.0", "id": None, "error": error}, [])
                return
            # Every body is held to the JSON limits before anything parses it (ours below, or the SDK's).
            messages, body = await _read_body(receive)
            problem = _body_problem(body)
            if problem is not None:
                error = {"code": types.INVALID_REQUEST, "message": f"Invalid request: {problem}"}
                await _json_response(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])
                return
            anonymous = auth.principal is None and auth.app.auth_mode != "oauth_tools"
            if anonymous or auth.principal and auth.principal.limited:
                calls = _tool_calls(body)
                if auth.principal is None and any(name not in LOGIN_TOOLS for name in calls):
                    await _challenge(send, tenant, app)
                    return
                if auth.principal is not None:
                    needed = _missing_scopes(auth, calls, decided)
                    if needed is not None:
                        await _insufficient_scope(send, tenant, app, needed)
                        return
            receive = _replay(messages, receive)
        state = {
            **scope.get("state", {}),
            "authsec": auth,
            "authsec_live": self.live,
            "authsec_mcp_session": mcp_session_id,
            "authsec_decided": decided,
            "authsec_context": audit_context.RequestContext(
                _request_id(), scope_ip(scope), headers.get(b"user-agent", "")[:255]
            ),
        }
        if not mcp_session_id and scope.get("method") == "POST":
            send = self._note_new_session(send, tenant, app)
        await self.session_manager.handle_request(dict(scope, state=state), receive, send)

    def _note_new_session(self, send: Send, tenant: str, app: str) -> Send:
        """Wrap `send` to record which endpoint a new handshake-era session (an initialize answer) belongs to."""

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 400:
                for key, value in message.get("headers", ()):
                    if key.lower() == MCP_SESSION_HEADER:
                        self.live.opened(value.decode("latin-1"), tenant, app)
            await send(message)

        return noting_send


SESSION_NOT_FOUND = {"code": types.INVALID_REQUEST, "message": "Session not found"}


def _missing_scopes(auth: RequestAuth, calls: list[str], decided: dict[str, Authorization]) -> list[str] | None:
    """For a token narrower than its user's grants: the scopes to ask for when a called tool is visible to the
    user but not allowed with this token's scopes (None: every call is fine, or hidden/unknown → handled as such).

    Each decision is kept in `decided`, where the tools/call handler of this request finds it."""
    for name in calls:
        if name in LOGIN_TOOLS or name not in registry or name in decided:
            continue
        decision = decided[name] = authorize(auth.principal, auth.app.policies.get(name))
        if decision.step_up:
            return list(decision.step_up)
    return None


async def _insufficient_scope(send: Send, tenant: str, app: str, scopes: list[str]) -> None:
    """403 per RFC 6750 §3.1 / MCP step-up authorization: the scopes to re-authorize with."""
    scope_value = " ".join(scopes)
    description = "The access token lacks a scope this tool needs; authorize again with the scopes named here."
    header = (
        f'Bearer error="insufficient_scope", scope="{_quote(scope_value)}", '
        f'resource_metadata="{resource_metadata_url(tenant, app)}", error_description="{description}"'
    ).encode()
    body = {"error": "insufficient_scope", "error_description": description, "scope": scope_value}
    await _json_response(send, 403, body, [(b"www-authenticate", header)])


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
