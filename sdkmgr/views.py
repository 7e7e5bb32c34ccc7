"""The SDK-manager REST API of the published AuthSec SDK (`authsec-sdk` 4.7.3), at ``/sdkmgr/mcp-auth/…`` and
``/sdkmgr/services/…`` (public URLConf: the tenant comes from the client id, `sdkmgr.clients`).

Views are thin: they parse JSON, resolve the client, count the rate limit, then call the MCP endpoint's own
login tools (`mcp_endpoint.login.run_tool`: the same auth sessions as ``/t/<tenant>/mcp/<app>``), the one
decision engine through `rbac.principal` (`authorize`, `visible`) and `services.sdk.ServiceAccessSDK`. Every
answer is JSON; errors are ``{"error", "message"}`` (plus ``"allowed": false`` where the SDK reads it).
See docs/sdk.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import wraps
from types import SimpleNamespace
from typing import Any

from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_tenants.utils import schema_context

import audit
from audit.models import AuditEvent
from authsec_site.lib.health import check_all
from authsec_site.lib.jsonbody import JSONBodyError, parse_json
from mcp_endpoint import login, pinning
from mcp_endpoint.models import AuthSession, pending_ttl, session_ttl
from oauth import issuer
from rbac.principal import Principal, authorize, visible
from sdkmgr import throttle, tools
from sdkmgr.clients import Caller, SdkError, client_id_of, resolve_client

logger = logging.getLogger(__name__)
SESSION_INDEX = "sdkmgr:session:"  # sha256(session id) -> client id (public cache keys), for status/{id}
LAST_TOOL = "sdkmgr:last-tool:"  # sha256(session id) -> the tool protect-tool last allowed (for service audits)
LAST_TOOL_TTL = 300


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _json(data: dict[str, Any], status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.method != "POST":
        return {}
    try:
        raw = request.body
    except RequestDataTooBig:
        raise SdkError(413, "invalid_request", "The request body is too large.") from None
    try:
        data = parse_json(raw or b"{}")
    except JSONBodyError as exc:
        if not exc.is_limit:  # not JSON, not UTF-8: the message the SDK has always shown
            raise SdkError(400, "invalid_request", "The request body must be a JSON object.") from None
        raise SdkError(413 if exc.reason == "size" else 400, "invalid_request", exc.message) from None
    if not isinstance(data, dict):
        raise SdkError(400, "invalid_request", "The request body must be a JSON object.")
    return data


def endpoint(
    method: str, *, bucket: str = "call", client: bool = True, allowed_key: bool = False
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., JsonResponse]]:
    """Wrap a view: method check, JSON body, client resolution, rate limit, JSON errors, public schema after.

    `allowed_key`: error bodies also carry ``"allowed": false`` (the SDK reads it on protect-tool)."""

    def wrap(view: Callable[..., dict[str, Any]]) -> Callable[..., JsonResponse]:
        @csrf_exempt
        @wraps(view)
        def run(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            try:
                if request.method != method:
                    raise SdkError(405, "method_not_allowed", f"Use {method} for this endpoint.")
                body = _body(request)
                if not client:
                    return _json(view(request, body, **kwargs))
                client_id = client_id_of(request, body)
                retry = throttle.hit(client_id, "call") or (bucket == "login" and throttle.hit(client_id, bucket))
                if retry:
                    raise SdkError(
                        429, "rate_limited", f"Too many requests for this client id; retry in {retry} s.",
                        retry_after=retry,
                    )  # fmt: skip
                caller = resolve_client(client_id, request.headers.get("X-App-Name", ""))
                return _json(view(request, body, caller, **kwargs))
            except SdkError as exc:
                body = ({"allowed": False} if allowed_key else {}) | exc.body()
                headers = {"Retry_After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else {}
                return _json(body, exc.status, **headers)
            except Exception:
                logger.exception("SDK endpoint %s failed", request.path)
                error = {"error": "server_error", "message": "The request failed; the error was logged on the server."}
                return _json(({"allowed": False} if allowed_key else {}) | error, 500)
            finally:
                connection.set_schema_to_public()

        return run

    return wrap


def _session_id(body: dict[str, Any], key: str = "session_id") -> str:
    value = body.get(key)
    return value if isinstance(value, str) and 0 < len(value) <= 64 else ""


def _principal(caller: Caller, session_id: str) -> Principal | None:
    return login.principal_for_session(caller.auth, session_id) if session_id else None


def user_info(caller: Caller, principal: Principal) -> dict[str, Any]:
    """What the SDK injects as ``arguments["_user_info"]``: the verified identity and its database-backed grants
    (always lists). No access token: the SDK's own `ServiceAccessSDK` authenticates with the session id."""
    info = principal.user_info()
    slug = caller.tenant.slug
    return {**info, "tenant_id": slug, "workspace_id": slug, "org_id": slug, "application": caller.auth.app.slug}


# --- mcp-auth -----------------------------------------------------------------------------------------------------


@endpoint("GET", client=False)
def auth_health(request: HttpRequest, body: dict[str, Any]) -> dict[str, Any]:
    checks = {name: status for name, status in check_all().items() if name in ("database", "redis")}
    healthy = all(status == "ok" for status in checks.values())
    if not healthy:
        raise SdkError(503, "unhealthy", "A backing service is unavailable.", status="unhealthy", checks=checks)
    return {"status": "healthy", "service": "sdkmgr/mcp-auth", "checks": checks}


def _login_tools() -> list[dict[str, Any]]:
    listed = []
    for tool in login.MCP_TOOLS:
        schema = dict(tool.input_schema)
        if tool.name == "oauth_start":  # handled by the SDK itself; listed so clients may pass it
            schema["properties"] = {
                "open_browser": {"type": "boolean", "description": "Open the URL in a browser on the MCP server."}
            }
        listed.append({"name": tool.name, "description": tool.description, "inputSchema": schema})
    return listed


@endpoint("POST")
def tools_list(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The login tools plus the declared tools this session's user may use (`visible` over the policy rows)."""
    declared = tools.parse(body.get("user_tools"))
    if tools.record_declarations(caller, declared):
        caller = resolve_client(caller.client_id, caller.app_name)  # new rows: read the fresh configuration
    if tools.observe_definitions(caller, declared):
        caller = resolve_client(caller.client_id, caller.app_name)  # pins changed: the held tools too
    principal = _principal(caller, _session_id(body))
    held = caller.auth.app.pins.held  # changed definitions waiting for review (tool pinning)
    shown = set(visible(principal, caller.auth.app.policies, [t.name for t in declared if t.name not in held]))
    allowed = [tool.as_tool() for tool in declared if tool.name in shown]
    connection.set_tenant(caller.tenant)
    audit.record(
        _actor(caller, principal),
        "mcp.tools_listed",
        target=caller.target,
        data={"application": caller.auth.app.slug, "count": len(allowed), "via": "sdk"},
    )
    return {"tools": _login_tools() + allowed}


def _actor(caller: Caller, principal: Principal | None) -> Any:
    return caller.actor if principal is None else principal.audit_actor


def _payload(content: list[dict[str, Any]]) -> dict[str, Any] | None:
    for item in content:
        if item.get("type") == "text":
            try:
                data = json.loads(item["text"])
            except (KeyError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def _run_login_tool(caller: Caller, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One of the five login tools, through the hosted endpoint's own implementation."""
    if name not in login.LOGIN_TOOLS:
        raise SdkError(404, "unknown_tool", f"Unknown tool: {name}. The login tools are {sorted(login.LOGIN_TOOLS)}.")
    try:
        content = login.run_tool(name, arguments, caller.auth, caller.actor)
    except login.LoginToolError as exc:
        text = json.dumps({"error": "invalid_request", "message": str(exc)})
        return {"content": [{"type": "text", "text": text}], "isError": True}
    payload = _payload(content)
    if payload is not None:
        session_id = payload.get("session_id") or _session_id(arguments)
        if name == "oauth_start" and session_id:
            with schema_context("public"):
                cache.set(SESSION_INDEX + _digest(session_id), caller.client_id, timeout=pending_ttl() + session_ttl())
        if session_id and "session_id" not in payload:
            # The SDK tracks its current session from this field (oauth_status, oauth_authenticate).
            payload["session_id"] = session_id
            content = [{"type": "text", "text": json.dumps(payload)}, *content[1:]]
    return {"content": content, "isError": False}


def _tool_arguments(body: dict[str, Any]) -> dict[str, Any]:
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise SdkError(400, "invalid_request", "arguments must be a JSON object.")
    return arguments


@endpoint("POST")
def tools_call(request: HttpRequest, body: dict[str, Any], caller: Caller, tool_name: str) -> dict[str, Any]:
    if tool_name == "oauth_start" and throttle.hit(caller.client_id, "login"):
        raise SdkError(429, "rate_limited", "Too many logins started for this client id; retry in a minute.")
    return _run_login_tool(caller, tool_name, _tool_arguments(body))


@endpoint("POST", bucket="login")
def start(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The SDK CLI's `authsec mcp login`: an ``oauth_start`` answering ``{authorization_url, session_id}`` plus
    the ``user_code`` the user types on the confirmation page and a ``message`` saying so."""
    result = _run_login_tool(caller, "oauth_start", {})
    payload = _payload(result["content"]) or {}
    keys = ("session_id", "authorization_url", "status", "expires_in", "user_code", "message")
    return {key: payload[key] for key in keys if key in payload}


@endpoint("GET", client=False)
def status(request: HttpRequest, body: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The status of a session started here: pending, authenticated, expired, logged_out or not_found. A login
    the user declined is ``logged_out`` with ``"reason": "denied"`` (the CLI stops polling only on the former)."""
    not_found = {"status": "not_found", "session_id": session_id}
    if not 0 < len(session_id) <= 64:
        return not_found
    with schema_context("public"):
        client_id = cache.get(SESSION_INDEX + _digest(session_id))
    if client_id is None:
        return not_found
    sent = request.headers.get("X-Client-ID")
    if sent is not None and client_id_of(request, None) != client_id:
        return not_found  # a session is only visible to the client that started it
    if throttle.hit(client_id, "call"):
        raise SdkError(429, "rate_limited", "Too many requests for this client id; retry in a minute.")
    caller = resolve_client(client_id)
    answer = _payload(_run_login_tool(caller, "oauth_status", {"session_id": session_id})["content"]) or not_found
    if answer.get("status") == AuthSession.Status.DENIED:
        answer = {**answer, "status": AuthSession.Status.LOGGED_OUT, "reason": "denied"}
    return answer


@endpoint("POST", allowed_key=True)
def protect_tool(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """May this session's user call `tool_name`? The same decision as the hosted endpoint's tools/call."""
    tool_name = body.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name or len(tool_name) > 128:
        raise SdkError(400, "invalid_request", "tool_name is required.")
    session_id = _session_id(body)
    principal = _principal(caller, session_id)
    connection.set_tenant(caller.tenant)

    def audit_call(outcome: str, reason: str) -> None:
        audit.record(
            _actor(caller, principal),
            "mcp.tool_call",
            target=caller.target,
            outcome=outcome,
            data={"application": caller.auth.app.slug, "tool": tool_name, "reason": reason, "via": "sdk"},
        )

    if principal is None:
        audit_call(AuditEvent.Outcome.DENY, "no authenticated session")
        raise SdkError(
            401,
            "unauthorized",
            "Authentication required: run oauth_start and sign in (session not found, expired or logged out).",
            allowed=False,
            status_code=401,
            tool=tool_name,
        )
    decision = authorize(principal, caller.auth.app.policies.get(tool_name))
    if not decision.allowed:
        audit_call(AuditEvent.Outcome.DENY, decision.reason)
        raise SdkError(
            403, "forbidden", f"Access denied: {decision.reason}", allowed=False, status_code=403, tool=tool_name
        )
    if tool_name in caller.auth.app.pins.held:
        audit_call(AuditEvent.Outcome.DENY, f"{decision.reason}; {pinning.HELD_REASON}")
        message = pinning.held_message(tool_name)
        raise SdkError(403, "tool_held", message, allowed=False, status_code=403, tool=tool_name)
    audit_call(AuditEvent.Outcome.ALLOW, decision.reason)
    with schema_context("public"):
        cache.set(LAST_TOOL + _digest(session_id), tool_name, timeout=LAST_TOOL_TTL)
    return {"allowed": True, "session_id": session_id, "tool": tool_name, "user_info": user_info(caller, principal)}


@endpoint("POST")
def cleanup_sessions(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """Sent by the SDK on shutdown. Sessions are not ended here: the client id is not a secret, and one SDK
    process stopping must not log out the users of another; they end at their expiry or in the dashboard."""
    reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
    connection.set_tenant(caller.tenant)
    audit.record(
        caller.actor,
        "sdkmgr.cleanup_requested",
        target=caller.target,
        data={"application": caller.auth.app.slug, "reason": reason[:100]},
    )
    return {
        "message": (
            f"Noted. Sessions of this client end when they expire ({session_ttl()} s after login) "
            "or when revoked in the dashboard (MCP auth sessions)."
        ),
        "cleaned": 0,
    }


# --- services -------------------------------------------------------------------------------------------------------


@endpoint("GET", client=False)
def services_health(request: HttpRequest, body: dict[str, Any]) -> dict[str, Any]:
    checks = check_all()
    if not all(status == "ok" for status in checks.values()):
        raise SdkError(503, "unhealthy", "A backing service is unavailable.", status="unhealthy", checks=checks)
    return {"status": "healthy", "service": "sdkmgr/services", "checks": checks}


def _service_request(body: dict[str, Any], caller: Caller) -> tuple[str, str, Principal]:
    name = body.get("service_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise SdkError(400, "invalid_request", "service_name is required (1-128 characters).")
    session_id = _session_id(body)
    principal = _principal(caller, session_id)
    if principal is None:
        raise SdkError(401, "unauthorized", "Authentication required: the session is not found, expired or logged out.")
    connection.set_tenant(caller.tenant)
    return name, session_id, principal


@endpoint("POST")
def credentials(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """A service's credentials for the session's user, through `ServiceAccessSDK` (its RBAC check, Vault, audit)."""
    from services import sdk

    name, session_id, principal = _service_request(body, caller)
    with schema_context("public"):
        tool = cache.get(LAST_TOOL + _digest(session_id)) or ""
    session = SimpleNamespace(
        session_id=session_id,
        schema_name=caller.tenant.schema_name,
        tenant_id=caller.tenant.slug,
        application=caller.auth.app.slug,
        user_info=user_info(caller, principal),
        tool=tool,
        request_id=getattr(request, "request_id", ""),
    )
    try:
        return async_to_sync(sdk.ServiceAccessSDK(session).get_service_credentials)(name)
    except sdk.ServiceNotFound as exc:
        raise SdkError(404, "service_not_found", str(exc)) from None
    except sdk.ServiceAccessDenied as exc:
        raise SdkError(403, "forbidden", str(exc)) from None
    except sdk.ServiceUnavailable as exc:
        raise SdkError(503, "service_unavailable", str(exc)) from None
    except sdk.ServiceAccessError as exc:
        raise SdkError(400, "service_error", str(exc)) from None


@endpoint("POST")
def user_details(request: HttpRequest, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The session user's verified identity for a service the user may use (no secret): the SDK's "JWT payload
    details". Decided with the service's requirement by the one engine; audited."""
    from services.models import Service

    name, session_id, principal = _service_request(body, caller)
    service = Service.objects.filter(name=name).first()
    decision = authorize(principal, service.requirement()) if service is not None else None
    allowed = decision is not None and decision.allowed
    audit.record(
        _actor(caller, principal),
        "sdkmgr.user_details_read",
        target=service if service is not None else caller.target,
        outcome=AuditEvent.Outcome.ALLOW if allowed else AuditEvent.Outcome.DENY,
        data={
            "application": caller.auth.app.slug,
            "service": name,
            "reason": decision.reason if decision else "no such service",
        },
    )
    if service is None:
        raise SdkError(404, "service_not_found", f'The service "{name}" is not configured for this tenant.')
    if not allowed:
        raise SdkError(403, "forbidden", f'You are not permitted to use the service "{name}".')
    info = user_info(caller, principal)
    return {
        "service_id": str(service.pk),
        "service_name": service.name,
        "sub": str(principal.user_id),
        "iss": issuer.issuer_for(caller.tenant),
        **info,
    }


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    return _json({"error": "not_found", "message": f"No SDK endpoint at {request.path}."}, 404)
