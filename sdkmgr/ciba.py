"""The published SDK's CIBA client (`authsec_sdk.ciba.CIBAClient`, authsec-sdk 4.7.3), served under the tenant's
issuer: ``CIBAClient(client_id=<CIBA client id>, base_url="https://<id>:<secret>@host/t/<tenant>/oauth")``.

The SDK joins its paths to the base URL (``{base}/authsec/uflow/auth/workspace/ciba/initiate`` …). Each
backchannel request is an approval request of `approvals` (kind ``ciba``, mode ``self``): the named user
approves or denies it on the tenant's approval page ``/t/<tenant>/approvals/`` after a fresh second factor
(no push app), and the client polls for the token, which the tenant's issuer mints (`oauth.services`).
Every call authenticates the client (`oauth.backchannel`); every answer is JSON, errors as OAuth errors
``{"error", "error_description"}`` with ``"success": false`` (the SDK reads ``error`` on polls, and hands the
other bodies to its caller). See docs/ciba.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import mfa
from accounts.models import User
from approvals import services as approvals
from approvals.models import ApprovalRequest
from authsec_site.lib.jsonbody import JSONBodyError, parse_json
from oauth import backchannel
from oauth.backchannel import AuthenticatedClient, BackchannelError
from sdkmgr import services, throttle

logger = logging.getLogger(__name__)
MAX_EMAIL = 254
FRESH_FACTOR_SECONDS = 300  # an approval needs a second factor at most this old (the approval page's rule too)
MAX_PENDING_PER_USER = 5  # pending backchannel requests one user may have at once (approval spam)


def _json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _error(exc: BackchannelError) -> JsonResponse:
    response = _json({"success": False, "error": exc.error, "error_description": exc.description}, exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="authsec-ciba", charset="UTF-8"'
    return response


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BackchannelError(413, "invalid_request", "The request body is too large.") from None
    try:
        data = parse_json(raw or b"{}")
    except JSONBodyError as exc:
        message = exc.message if exc.is_limit else "The request body must be a JSON object."
        raise BackchannelError(413 if exc.reason == "size" else 400, "invalid_request", message) from None
    if not isinstance(data, dict):
        raise BackchannelError(400, "invalid_request", "The request body must be a JSON object.")
    return data


def endpoint(method: str = "POST") -> Callable[[Callable[..., JsonResponse]], Callable[..., JsonResponse]]:
    """Wrap a view: method check, JSON body, OAuth JSON errors, never a stack trace."""

    def wrap(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
        @csrf_exempt
        @wraps(view)
        def run(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            try:
                if request.method != method:
                    response = _error(BackchannelError(405, "invalid_request", f"Use {method} on this endpoint."))
                    response["Allow"] = method
                    return response
                return view(request, _body(request) if method == "POST" else {}, **kwargs)
            except BackchannelError as exc:
                return _error(exc)
            except Exception:
                logger.exception("CIBA endpoint %s failed", request.path)
                return _error(BackchannelError(500, "server_error", "The request failed; the error was logged."))

        return run

    return wrap


def _client(request: HttpRequest, body: dict[str, Any], bucket: str = "call") -> AuthenticatedClient:
    """The authenticated CIBA client, within its rate limits (per client and tenant, shared by every worker)."""
    caller = backchannel.authenticate(request, body)
    key = f"ciba:{connection.schema_name}:{caller.client.client_id}"
    retry = throttle.hit(key, "call") or (bucket == "login" and throttle.hit(key, "login"))
    if retry:
        raise BackchannelError(429, "slow_down", f"Too many requests for this client; retry in {retry} s.")
    return caller


def _string(body: dict[str, Any], name: str, *, required: bool = True, limit: int = 256) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BackchannelError(400, "invalid_request", f"{name} is required.")
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BackchannelError(400, "invalid_request", f"{name} must be a string of at most {limit} characters.")
    return value.strip()


def _user(body: dict[str, Any]) -> User:
    email = _string(body, "email", limit=MAX_EMAIL)
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None:
        raise BackchannelError(400, "unknown_user_id", "No active user of this workspace has that email.")
    return user


def _approval_url(request_id: Any) -> str:
    return f"{settings.AUTHSEC_PUBLIC_URL}{approvals.approval_path(request_id)}"


def _ciba_request(auth_req_id: str, client_id: str | None = None) -> ApprovalRequest:
    """Backchannel request `auth_req_id` of this tenant (of `client_id` when given), else 400 invalid_grant."""
    found = approvals.get_request(auth_req_id)
    if (
        found is None
        or found.kind != ApprovalRequest.Kind.CIBA
        or (client_id is not None and found.client_id != client_id)
    ):
        raise BackchannelError(400, "invalid_grant", "Unknown auth_req_id.")
    return found


# --- CIBA: initiate, poll, respond, pending requests -------------------------------------------------------------


@endpoint()
def initiate(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """Backchannel authentication request (CIBA §7): a pending approval the named user answers on the approval page."""
    caller = _client(request, body, bucket="login")
    user = _user(body)
    message = _string(body, "binding_message", required=False, limit=256)
    scope = _string(body, "scope", required=False, limit=500) or "openid"
    expiry = body.get("requested_expiry", settings.CIBA_REQUEST_SECONDS)
    if isinstance(expiry, str) and expiry.isdigit():
        expiry = int(expiry)
    if not isinstance(expiry, int) or isinstance(expiry, bool) or not 10 <= expiry <= settings.CIBA_REQUEST_SECONDS:
        raise BackchannelError(
            400, "invalid_request", f"requested_expiry must be 10 to {settings.CIBA_REQUEST_SECONDS} seconds."
        )
    pending = ApprovalRequest.objects.pending().filter(kind=ApprovalRequest.Kind.CIBA, caller=user).count()
    if pending >= MAX_PENDING_PER_USER:
        raise BackchannelError(
            429, "slow_down", "This user already has too many sign-in requests waiting; try again after they end."
        )
    created = services.start_backchannel_request(
        client=caller.client, user=user, binding_message=message, scope=scope, expires_in=expiry
    )
    return _json(
        {
            "success": True,
            "auth_req_id": str(created.id),
            "expires_in": expiry,
            "interval": settings.CIBA_POLL_INTERVAL,
            "approval_url": _approval_url(created.id),
            "message": "The user approves or denies this request on the approval page (after a second factor).",
        }
    )


@endpoint()
def token(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """The poll (CIBA §10/§11): authorization_pending, slow_down, expired_token, access_denied, or the token once."""
    caller = _client(request, body)
    auth_req_id = _string(body, "auth_req_id", limit=64)
    grant_type = body.get("grant_type")
    if grant_type not in (None, "urn:openid:params:grant-type:ciba"):
        raise BackchannelError(400, "unsupported_grant_type", "grant_type must be urn:openid:params:grant-type:ciba.")
    found = _ciba_request(auth_req_id, caller.client.client_id)
    state = found.effective_status
    if state == ApprovalRequest.Status.PENDING:
        # A poll sooner than `interval` after the previous one is told to slow down (CIBA §11).
        if not cache.add(f"ciba:poll:{found.id}", 1, timeout=settings.CIBA_POLL_INTERVAL):
            raise BackchannelError(400, "slow_down", f"Poll at most every {settings.CIBA_POLL_INTERVAL} seconds.")
        raise BackchannelError(400, "authorization_pending", "The user has not answered yet.")
    if state == ApprovalRequest.Status.EXPIRED:
        raise BackchannelError(400, "expired_token", "The request expired before the user answered.")
    if state == ApprovalRequest.Status.DENIED:
        raise BackchannelError(400, "access_denied", "The user denied the request.")
    if state == ApprovalRequest.Status.USED:
        raise BackchannelError(400, "invalid_grant", "This auth_req_id was already exchanged for a token.")
    issued = services.redeem_backchannel_request(client=caller.client, request=found)
    if issued is None:  # another poll redeemed it first, or its user was deactivated meanwhile
        raise BackchannelError(400, "invalid_grant", "This auth_req_id can no longer be exchanged for a token.")
    return _json({"success": True, **issued, "auth_req_id": str(found.id)})


@endpoint()
def respond(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """The named user answers with their own bearer token. Denying needs only that; approving also needs a fresh
    second factor, which a token from TOTP sign-in (at most 5 minutes old) proves. Otherwise: the approval page."""
    bearer = backchannel.bearer_user(request)
    if bearer is None:
        raise BackchannelError(
            401,
            "invalid_token",
            "Answer with the user's access token (Authorization: Bearer). A CIBAClient whose base URL carries client "
            "credentials sends those instead: use one without them to respond.",
        )
    auth_req_id = _string(body, "auth_req_id", limit=64)
    approved = body.get("approved")
    if not isinstance(approved, bool):
        raise BackchannelError(400, "invalid_request", "approved must be true or false.")
    found = _ciba_request(auth_req_id)
    if found.caller_id != bearer.user.pk:
        raise BackchannelError(403, "access_denied", "Only the user named in the request answers it.")
    if approved and not bearer.verified_factor_within(FRESH_FACTOR_SECONDS):
        raise BackchannelError(
            403,
            "second_factor_required",
            f"Approving needs a second factor from the last 5 minutes: approve on {_approval_url(found.id)} or sign "
            "in with TOTP first and respond with that token.",
        )
    try:
        decided = approvals.decide(found, bearer.user, approved)
    except approvals.ApprovalError as exc:
        if exc.code == "expired":
            raise BackchannelError(400, "expired_token", str(exc)) from None
        raise BackchannelError(400, "invalid_request", str(exc)) from None
    return _json({"success": True, "auth_req_id": str(decided.id), "status": decided.status})


@endpoint("GET")
def pending_requests(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """The bearer's own pending backchannel requests (the SDK's `list_pending_requests`)."""
    bearer = backchannel.bearer_user(request)
    if bearer is None:
        raise BackchannelError(401, "invalid_token", "Send the user's access token (Authorization: Bearer).")
    rows = ApprovalRequest.objects.pending().filter(kind=ApprovalRequest.Kind.CIBA, caller=bearer.user)
    return _json(
        {
            "success": True,
            "requests": [
                {
                    "auth_req_id": str(row.id),
                    "client_id": row.client_id,
                    "client_name": row.extra.get("client_name", ""),
                    "binding_message": row.binding_message,
                    "scope": row.scope,
                    "created_at": row.created_at.isoformat(),
                    "expires_at": row.expires_at.isoformat(),
                    "approval_url": _approval_url(row.id),
                }
                for row in rows[:50]
            ],
        }
    )


@endpoint()
def register_device(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    raise BackchannelError(
        400,
        "invalid_request",
        "This server sends no push notifications: users approve sign-in requests on the approval page "
        f"{settings.AUTHSEC_PUBLIC_URL}/t/{connection.tenant.slug}/approvals/ (CIBAClient's initiate answers its URL).",
    )


# --- TOTP sign-in and the MFA status look-ups -------------------------------------------------------------------


@endpoint()
def totp_login(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """A TOTP code of the named user → a token for the client (`amr` otp). Failures are counted by `accounts.mfa`."""
    caller = _client(request, body, bucket="login")
    code = body.get("totp_code")
    if not isinstance(code, str) or not code.strip().isdigit() or not 6 <= len(code.strip()) <= 8:
        raise BackchannelError(400, "invalid_request", "totp_code must be the 6-digit code of the user's app.")
    email = _string(body, "email", limit=MAX_EMAIL)
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None or not mfa.verify_totp(user, code.strip()):
        # One answer for an unknown user, a user without TOTP and a wrong, reused or throttled code.
        raise BackchannelError(400, "invalid_grant", "The code is not valid for this user.")
    issued = services.issue_totp_token(client=caller.client, user=user)
    return _json({"success": True, **issued, "token": issued["access_token"]})


def _mfa_status(user: User) -> dict[str, Any]:
    totp = mfa.has_totp(user)
    passkeys = len(mfa.passkeys_of(user))
    methods = [name for name, present in (("totp", totp), ("webauthn", passkeys > 0)) if present]
    return {
        "success": True,
        "email": user.email,
        "workspace_id": connection.tenant.slug,
        "mfa_enabled": bool(methods),
        "mfa_required": True,  # approving a sign-in request always needs a second factor
        "methods": methods,
        "totp_enabled": totp,
        "webauthn_enabled": passkeys > 0,
        "ciba_available": bool(methods),  # without a factor the user cannot approve on the approval page
    }


@endpoint()
def mfa_status(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """`get_end_user_mfa_status(email, workspace_id)`: the workspace id is this tenant's slug (or absent)."""
    _client(request, body)
    workspace = _string(body, "workspace_id", required=False, limit=100)
    if workspace and workspace not in (connection.tenant.slug, connection.tenant.schema_name):
        raise BackchannelError(400, "invalid_request", "workspace_id names another workspace than this URL's.")
    return _json(_mfa_status(_user(body)))


@endpoint()
def mfa_status_by_client(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    """`get_end_user_mfa_status_by_client(email)`: the client's own workspace."""
    _client(request, body)
    return _json(_mfa_status(_user(body)))


# --- What this server does not offer, said clearly ---------------------------------------------------------------


@endpoint()
def admin_flow(request: HttpRequest, body: dict[str, Any], **kwargs: Any) -> JsonResponse:
    raise BackchannelError(
        400,
        "invalid_request",
        "This server serves the workspace (end-user) flow only: create the SDK's CIBAClient with client_id=<the "
        "CIBA client id from the dashboard>.",
    )


@endpoint()
def password_login(request: HttpRequest, body: dict[str, Any]) -> JsonResponse:
    raise BackchannelError(
        400,
        "unsupported_grant_type",
        "Password sign-in over the API is not offered (OAuth 2.1 has no password grant): use initiate_app_approval "
        "(the user approves on the approval page) or verify_totp.",
    )
