"""The gate of the hosted MCP endpoint: one streamable-HTTP ASGI app serving ``/t/<tenant>/mcp/<app>`` for every
tenant.

Per request, before any MCP message is handled (`McpEndpoint.handle`): tenant and application are
resolved (unknown or inactive → 404), the bearer token is verified offline (`mcp_endpoint.bearer`), and the
application's ``auth_mode`` decides between anonymous access and a 401 challenge. A POST body is held to the
JSON limits before anything parses it; for a scope-limited token the gate decides the calls of the body (to
answer a step-up with 403) and the handlers (`mcp_endpoint.handlers`) reuse that decision. The session
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
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Message, Receive, Scope, Send

from audit import context as audit_context
from authsec_site.lib import metrics, outage
from authsec_site.lib.background import background
from authsec_site.lib.client_ip import scope_ip
from authsec_site.lib.jsonbody import JSONBodyError, check_json, read_asgi_body, replay
from mcp_endpoint import login, notify
from mcp_endpoint.bearer import NotFound, RequestAuth, resolve, resolve_cached
from mcp_endpoint.bearer import mirror as bearer_mirror
from mcp_endpoint.handlers import build_server, forget_broken_connections
from mcp_endpoint.login import LOGIN_MODES, LOGIN_TOOLS, SESSION_HEADER
from mcp_endpoint.registry import ensure_loaded, registry
from rbac.principal import Authorization, authorize

logger = logging.getLogger(__name__)

MCP_PATH = re.compile(r"^/t/(?P<tenant>[a-z][a-z0-9-]{0,38}[a-z0-9])/mcp/(?P<app>[a-z0-9][a-z0-9_-]{0,63})$")
MCP_SESSION_HEADER = b"mcp-session-id"


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
# and key caches of `mcp_endpoint.bearer` hold one entry per distinct token).
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
            bearer_mirror().running(),
            background(notify.listen(self.live)),
        ):
            yield self

    async def handle(self, scope: Scope, receive: Receive, send: Send, tenant: str, app: str) -> None:
        """One HTTP request for the endpoint of `tenant` and `app` (from the path; the root router matched it).

        An exception before the answer started is a JSON-RPC error, never uvicorn's plain-text 500: HTTP 503
        with `Retry-After` when a backing service is down (`authsec_site.lib.outage`), else 500."""
        started = False

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._handle(scope, receive, noting_send, tenant, app)
        except Exception as exc:
            if started:
                raise
            service = outage.unavailable(exc)
            if service is None:
                logger.exception("MCP endpoint %s/%s failed", tenant, app)
                error, status, headers = (
                    {"code": types.INTERNAL_ERROR, "message": "Internal error; it was logged."},
                    500,
                    [],
                )
            else:
                logger.error("MCP endpoint %s/%s: %s unavailable (%s)", tenant, app, service, exc)
                await forget_broken_connections(exc)
                error = {"code": types.INTERNAL_ERROR, "message": f"Service unavailable: {outage.message(service)}"}
                status, headers = 503, [(b"retry-after", str(outage.RETRY_AFTER).encode())]
            metrics.mcp_refused(tenant, app, metrics.ERROR)
            await _json_response(send, status, {"jsonrpc": "2.0", "id": None, "error": error}, headers)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, tenant: str, app: str) -> None:
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
            metrics.mcp_refused(tenant, app, metrics.UNAUTHENTICATED)
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
            metrics.mcp_refused(tenant, app, metrics.UNAUTHENTICATED)
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
                metrics.mcp_refused(tenant, app, metrics.ERROR)
                await _json_response(send, 415, {"jsonrpc": "2.0", "id": None, "error": error}, [])
                return
            # Every body is held to the JSON limits before anything parses it (ours below, or the SDK's).
            messages, body = await read_asgi_body(receive)
            problem = _body_problem(body)
            if problem is not None:
                error = {"code": types.INVALID_REQUEST, "message": f"Invalid request: {problem}"}
                metrics.mcp_refused(tenant, app, metrics.ERROR)
                await _json_response(send, 400, {"jsonrpc": "2.0", "id": None, "error": error}, [])
                return
            anonymous = auth.principal is None and auth.app.auth_mode != "oauth_tools"
            if anonymous or auth.principal and auth.principal.limited:
                calls = _tool_calls(body)
                if auth.principal is None and any(name not in LOGIN_TOOLS for name in calls):
                    metrics.mcp_refused(tenant, app, metrics.UNAUTHENTICATED, "tools/call")
                    await _challenge(send, tenant, app)
                    return
                if auth.principal is not None:
                    needed = _missing_scopes(auth, calls, decided)
                    if needed is not None:
                        metrics.mcp_refused(tenant, app, metrics.DENIED, "tools/call")
                        await _insufficient_scope(send, tenant, app, needed)
                        return
            receive = replay(messages, receive)
        state = {
            **scope.get("state", {}),
            "authsec": auth,
            "authsec_live": self.live,
            "authsec_mcp_session": mcp_session_id,
            "authsec_decided": decided,
            "authsec_context": audit_context.new_context(
                _request_id(), scope_ip(scope), headers.get(b"user-agent", "")[:255]
            ),
        }
        if not mcp_session_id and scope.get("method") == "POST":
            send = self._note_new_session(send, tenant, app)
        elif mcp_session_id and scope.get("method") == "DELETE":
            send = self._note_closed_session(send, mcp_session_id)
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

    def _note_closed_session(self, send: Send, mcp_session_id: str) -> Send:
        """Wrap `send` to forget a session its client ended (a DELETE the session manager accepted)."""

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 400:
                self.live.closed(mcp_session_id)
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
