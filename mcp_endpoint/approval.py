"""Human approval on the tools/call path (docs/approvals.md): a call of a tool whose policy asks for approval runs
only on an approval that covers exactly its caller, application, tool and arguments (`approvals.services`).

How the caller is sent to the approval page depends on the protocol revision and on what the client declared:
- 2026-07-28 with URL-mode elicitation: an `InputRequiredResult` whose input request is a URL-mode
  `elicitation/create` pointing at the approval page, and whose `requestState` (sealed by the SDK's
  `RequestStateBoundary`) names the approval request; each retry carrying that state waits a little
  (`APPROVALS_RETRY_WAIT`) and then gets the tool's result, a clear denial or expiry, or another state-only round.
- 2025-06-18 / 2025-11-25 with URL-mode elicitation: an `elicitation/create` in URL mode on the session, then the
  call waits for the decision (`APPROVALS_CALL_WAIT`) and runs once approved.
- any other client: an ``isError`` result giving the URL; the identical call then runs on the approval (within the
  policy's covers window, or once).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from accounts.models import User
from approvals import services as approvals
from approvals.models import ApprovalRequest
from mcp_endpoint.bearer import RequestAuth
from rbac.models import ToolPolicy

logger = logging.getLogger(__name__)
INPUT_KEY = "authsec_approval"
URL_ELICITATION = types.ClientCapabilities(
    elicitation=types.ElicitationCapability(url=types.UrlElicitationCapability())
)
POLL_INTERVAL = 0.5
Status = ApprovalRequest.Status


@dataclass
class Outcome:
    """What the gate says about one call: `result` to answer now, or None to run the tool (on `approval_id`)."""

    result: types.CallToolResult | types.InputRequiredResult | None
    approval_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class _State:
    status: str
    approval_id: str
    url: str
    tool: str
    denied_by: str | None = None


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _snapshot(request: ApprovalRequest) -> _State:
    status = approvals.status(request.id)
    assert status is not None
    return _State(
        status.status,
        str(request.id),
        settings.AUTHSEC_PUBLIC_URL + approvals.approval_path(request),
        request.tool_name,
        status.denied_by,
    )


def _open(
    auth: RequestAuth, name: str, arguments: dict[str, Any], state_id: str | None, used_by: str
) -> tuple[str, _State | None]:
    """In the tenant's schema: use an approval that covers this call ("run"), or find the request it waits for
    ("wait"), or make a new one ("new"). ("none", None): the policy no longer asks for approval; ("refused", None):
    no user to ask for."""
    close_old_connections()
    connection.set_tenant(auth.tenant.tenant)
    policy = (
        ToolPolicy.objects.select_related("application").filter(application__slug=auth.app.slug, tool_name=name).first()
    )
    if policy is None or not policy.needs_approval:
        return "none", None
    principal = auth.principal
    user = (
        User.objects.filter(pk=principal.user_id, is_active=True).first() if principal and principal.user_id else None
    )
    if user is None:
        return "refused", None
    digest = approvals.args_hash(arguments)
    binding = {"caller": user, "application": policy.application, "tool_name": name, "args_hash": digest}
    used = approvals.consume(**binding, request_id=state_id, used_by=used_by)
    if used is None and state_id is not None:
        # The state names a request this call may not use (another tool, other arguments: the SDK's boundary
        # refuses those first) or one not approved: report it when it is this call's own.
        request = approvals.get_request(state_id)
        if request is not None and (
            request.caller_id,
            request.application_id,
            request.tool_name,
            request.args_hash,
        ) == (
            user.pk,
            policy.application_id,
            name,
            digest,
        ):
            snapshot = _snapshot(request)
            if snapshot.status in (Status.PENDING, Status.DENIED, Status.EXPIRED):
                return "wait", snapshot
    if used is None and state_id is None:
        used = approvals.consume(**binding, used_by=used_by)
    if used is not None:
        return "run", _State(Status.USED, str(used.id), "", name)
    request = approvals.request_for_policy(
        policy=policy, caller=user, arguments=arguments, client_id=principal.client_id if principal else ""
    )
    return "new", _snapshot(request)


def _consume_by_id(auth: RequestAuth, approval_id: str, used_by: str) -> _State:
    """Use approval `approval_id` now that it is decided (the same binding checks as `_open`), or read its state."""
    close_old_connections()
    connection.set_tenant(auth.tenant.tenant)
    request = approvals.get_request(approval_id)
    assert request is not None
    used = approvals.consume(
        caller=request.caller,
        application=request.application,
        tool_name=request.tool_name,
        args_hash=request.args_hash,
        request_id=approval_id,
        used_by=used_by,
    )
    if used is not None:
        return _State(Status.USED, approval_id, "", request.tool_name)
    return _snapshot(request)


def _read(auth: RequestAuth, approval_id: str) -> _State:
    close_old_connections()
    connection.set_tenant(auth.tenant.tenant)
    request = approvals.get_request(approval_id)
    assert request is not None
    return _snapshot(request)


_open_async = sync_to_async(_open)
_consume_async = sync_to_async(_consume_by_id)
_read_async = sync_to_async(_read)


async def _wait_decided(auth: RequestAuth, state: _State, seconds: float) -> _State:
    """Poll the request until it is no longer pending or `seconds` have passed; then use it if approved."""
    deadline = time.monotonic() + seconds
    while state.status == Status.PENDING and time.monotonic() < deadline:
        await anyio.sleep(POLL_INTERVAL)
        state = await _read_async(auth, state.approval_id)
    return state


def _message(state: _State) -> str:
    return f"The tool {state.tool} needs approval before it runs. Open {state.url} to review the request."


def _final(state: _State) -> Outcome | None:
    """The answer for a request that can no longer be approved (None: it still can)."""
    if state.status == Status.DENIED:
        who = f" by {state.denied_by}" if state.denied_by else ""
        return Outcome(
            _error(f"The call of {state.tool} was denied{who} (approval {state.approval_id}). It did not run."),
            state.approval_id,
            "approval denied",
        )
    if state.status == Status.EXPIRED:
        return Outcome(
            _error(
                f"The approval request {state.approval_id} for {state.tool} expired before anyone approved it. "
                "It did not run; call again to ask again."
            ),
            state.approval_id,
            "approval expired",
        )
    return None


def _retry_text(state: _State) -> Outcome:
    return Outcome(
        _error(
            f"{_message(state)} Call {state.tool} again with the same arguments after it is approved "
            f"(approval {state.approval_id})."
        ),
        state.approval_id,
        "approval pending",
    )


def _declined(state: _State) -> Outcome:
    return Outcome(
        _error(f"The approval page was not opened, so {state.tool} did not run (approval {state.approval_id})."),
        state.approval_id,
        "approval declined by client",
    )


async def _after_decision(ctx: Any, auth: RequestAuth, state: _State, used_by: str) -> Outcome:
    if state.status == Status.APPROVED:
        state = await _consume_async(auth, state.approval_id, used_by)
        if state.status == Status.USED:
            return Outcome(None, state.approval_id, "approved")
    return _final(state) or _retry_text(state)


async def check(ctx: Any, auth: RequestAuth, params: types.CallToolRequestParams, arguments: dict[str, Any]) -> Outcome:
    """The approval gate of one call that RBAC already allowed (see the module's docstring)."""
    name = params.name
    used_by = ctx.request.scope["state"]["authsec_context"].request_id
    modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
    state_id = params.request_state if modern else None
    kind, state = await _open_async(auth, name, arguments, state_id, used_by)
    if kind == "none":
        return Outcome(None)
    if kind == "refused" or state is None:
        return Outcome(
            _error(f"The tool {name} needs a person's approval, so it can only be called on behalf of a user."),
            reason="approval needs a user",
        )
    if kind == "run":
        return Outcome(None, state.approval_id, "approved")
    final = _final(state)
    if final is not None:
        return final
    url_capable = ctx.session.check_client_capability(URL_ELICITATION)
    if modern:
        return await _modern(ctx, auth, params, state, used_by, url_capable, fresh=kind == "new")
    if url_capable:
        return await _handshake_elicitation(ctx, auth, state, used_by)
    return _retry_text(state)


async def _modern(
    ctx: Any,
    auth: RequestAuth,
    params: types.CallToolRequestParams,
    state: _State,
    used_by: str,
    url_capable: bool,
    *,
    fresh: bool,
) -> Outcome:
    # A first call, or a retry whose state no longer covers the call (used, single use): ask for the new request.
    if params.request_state is None or fresh:
        if not url_capable:
            return _retry_text(state)
        elicit = types.ElicitRequest(params=types.ElicitRequestURLParams(message=_message(state), url=state.url))
        return Outcome(
            types.InputRequiredResult(input_requests={INPUT_KEY: elicit}, request_state=state.approval_id),
            state.approval_id,
            "approval pending",
        )
    response = (params.input_responses or {}).get(INPUT_KEY)
    if isinstance(response, types.ElicitResult) and response.action != "accept":
        return _declined(state)
    state = await _wait_decided(auth, state, float(settings.APPROVALS_RETRY_WAIT))
    if state.status == Status.PENDING:
        return Outcome(
            types.InputRequiredResult(request_state=state.approval_id), state.approval_id, "approval pending"
        )
    return await _after_decision(ctx, auth, state, used_by)


async def _handshake_elicitation(ctx: Any, auth: RequestAuth, state: _State, used_by: str) -> Outcome:
    try:
        # On the session's standalone stream: this request's own answer is JSON (`json_response`), no stream.
        answer = await ctx.session.elicit_url(_message(state), state.url, elicitation_id=state.approval_id)
    except Exception as exc:  # noqa: BLE001 - no back channel on this connection, or the client refused: say it in text
        logger.info("URL elicitation for approval %s not sent (%s: %s)", state.approval_id, type(exc).__name__, exc)
        return _retry_text(state)
    if answer.action != "accept":
        return _declined(state)
    state = await _wait_decided(auth, state, float(settings.APPROVALS_CALL_WAIT))
    if state.status != Status.PENDING:
        with contextlib.suppress(Exception):  # a courtesy notification: the result says the same
            await ctx.session.send_elicit_complete(state.approval_id)
    return await _after_decision(ctx, auth, state, used_by)


def _principal_binding(ctx: Any) -> str | None:
    """Who a sealed requestState belongs to: the tenant and user of the request (never another caller's)."""
    request = getattr(ctx, "request", None)
    auth = request.scope["state"].get("authsec") if request is not None else None
    if auth is None or auth.principal is None:
        return None
    return f"{auth.tenant.slug}:{auth.principal.user_id or auth.principal.client_id}"


def request_state_boundary() -> RequestStateBoundary:
    """The SDK's requestState sealing, with a key shared by every worker (derived from SECRET_KEY)."""
    key = hashlib.sha256(b"authsec/mcp/request-state/v1:" + settings.SECRET_KEY.encode("utf-8")).digest()
    security = RequestStateSecurity(keys=[key], ttl=7 * 24 * 3600.0, bind_principal=_principal_binding)
    return RequestStateBoundary(security, default_audience="authsec")
