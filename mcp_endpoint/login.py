"""The seed's five login tools and the auth sessions behind them (sync code: run it off the event loop).

`oauth_start` creates an `AuthSession` (recording where it was started: IP address and user agent) with a short
user code, and an authorization URL at this tenant's AS for the first-party public client ``authsec-mcp-login``
(created on demand per tenant), with a server-held PKCE verifier and ``state`` = SHA-256 of the session id.
Our callback (``/t/<tenant>/mcp-login/callback``) exchanges the code at our own token endpoint over HTTP and
verifies the token exactly like a bearer token, but does not bind: it sends the browser to the confirmation
page (``mcp-login/confirm``), where that same signed-in user types the user code and confirms (RFC 8628 §5.4:
a login link someone else started must never bind silently). A request carrying ``X-AuthSec-Session:
<session_id>`` then acts as that session's user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import mcp_types as types
from django.db import connection
from django.utils import timezone

from audit import context as audit_context
from mcp_endpoint import notify
from mcp_endpoint.bearer import Principal, RequestAuth, _user_uncached, resolve
from mcp_endpoint.models import AuthSession, new_user_code, pending_ttl, session_ttl, user_code_digest
from oauth import issuer

LOGIN_CLIENT_ID = "authsec-mcp-login"
LOGIN_SCOPE = "openid email"
SESSION_HEADER = b"x-authsec-session"
CALLBACK_PATH = "mcp-login/callback"
CONFIRM_PATH = "mcp-login/confirm"
LOGIN_MODES = ("oauth_tools", "both")

_SESSION_ARG = {"session_id": {"type": "string", "description": "The session_id returned by oauth_start."}}
TOOL_DEFS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "oauth_start": (
        "Start a login: returns a session_id, an authorization_url for the user to open in a browser and a "
        "user_code the user types on the confirmation page there.",
        {},
        [],
    ),
    "oauth_authenticate": (
        "Bind an access token issued by this tenant for this MCP endpoint to a login session.",
        {"jwt_token": {"type": "string", "description": "An access token for this MCP endpoint."}, **_SESSION_ARG},
        ["jwt_token", "session_id"],
    ),
    "oauth_status": (
        "The status of a login session: pending, authenticated, denied, expired, logged_out or not_found.",
        _SESSION_ARG,
        ["session_id"],
    ),
    "oauth_logout": ("End a login session.", _SESSION_ARG, ["session_id"]),
    "oauth_user_info": (
        "The verified identity and current grants of a login session's user.",
        _SESSION_ARG,
        ["session_id"],
    ),
}
LOGIN_TOOLS: frozenset[str] = frozenset(TOOL_DEFS)
MCP_TOOLS = [
    types.Tool(
        name=name,
        description=description,
        input_schema={"type": "object", "properties": properties, "required": required},
    )
    for name, (description, properties, required) in sorted(TOOL_DEFS.items())
]


class LoginToolError(Exception):
    """A clean error result of a login tool (bad or missing arguments)."""


def callback_url(tenant: Any) -> str:
    return f"{issuer.tenant_base(tenant)}/{CALLBACK_PATH}"


def login_client(tenant: Any) -> Any:
    """The tenant's first-party public client for login sessions (created on demand)."""
    from oauth.models import Client

    client = Client.objects.filter(client_id=LOGIN_CLIENT_ID).first()
    redirect = callback_url(tenant)
    if client is None:
        client = Client.objects.create(
            client_id=LOGIN_CLIENT_ID,
            name="AuthSec MCP login",
            client_type=Client.CLIENT_PUBLIC,
            authorization_grant_type=Client.GRANT_AUTHORIZATION_CODE,
            redirect_uris=redirect,
            algorithm=Client.RS256_ALGORITHM,
            client_secret="",
            skip_authorization=False,
            description="First-party client of the MCP login tools (oauth_start).",
        )
    elif redirect not in client.redirect_uris.split():
        client.redirect_uris = f"{client.redirect_uris} {redirect}".strip()
        client.save(update_fields=["redirect_uris"])
    return client


def client_origin(context: audit_context.RequestContext | None = None) -> tuple[str | None, str]:
    """(IP address, user agent) of the current request, as the request context has them (the one place that
    derives the client address: the Django middleware and the MCP endpoint fill it)."""
    context = context or audit_context.current()
    return context.ip, context.user_agent[:255]


def start_message(user_code: str) -> str:
    """What `oauth_start` tells the user: where to go, and to type only the code their own assistant shows."""
    return (
        f"Open authorization_url in your browser and sign in. A confirmation page will ask for the code {user_code}: "
        "type it there only if you started this login yourself, in this assistant. If someone else sent you a "
        "link or a code, choose Decline."
    )


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def audit_session(actor: Any, action: str, session: AuthSession, outcome: str = "success", **data: Any) -> None:
    """Audit an auth-session event; the target is a prefix of the state hash, never the session id."""
    import audit

    audit.record(
        actor,
        action,
        target=("mcp_endpoint.authsession", session.state[:16], session.application.slug),
        outcome=outcome,
        data={"application": session.application.slug, "session": session.state[:16], **data},
    )


def _get(session_id: Any, app_slug: str) -> AuthSession | None:
    if not isinstance(session_id, str) or not session_id or len(session_id) > 64:
        return None
    return AuthSession.objects.select_related("application", "user").filter(pk=session_id).first()


def _session_for(arguments: dict[str, Any], auth: RequestAuth) -> AuthSession | None:
    session = _get(arguments.get("session_id"), auth.app.slug)
    # A session of another application is "not_found" here (no cross-application use).
    return session if session is not None and session.application.slug == auth.app.slug else None


def _expire_if_due(session: AuthSession) -> str:
    status = session.current_status
    if status == AuthSession.Status.EXPIRED and session.status != status:
        session.status = status
        session.save(update_fields=["status"])
    return status


def principal_of(session: AuthSession, tenant_slug: str) -> Principal | None:
    if session.user_id is None:
        return None
    user = _user_uncached(session.user_id)
    if user is None or not user[1]:
        return None
    return Principal(user_id=session.user_id, email=user[0], tenant_slug=tenant_slug, grants=user[2])


def principal_for_session(auth: RequestAuth, session_id: str) -> Principal | None:
    """The user of an authenticated, unexpired session of this tenant and application, else None."""
    connection.set_tenant(auth.tenant.tenant)
    session = _get(session_id, auth.app.slug)
    if session is None or session.application.slug != auth.app.slug:
        return None
    if _expire_if_due(session) != AuthSession.Status.AUTHENTICATED:
        return None
    return principal_of(session, auth.tenant.slug)


def principal_for_mcp_session(auth: RequestAuth, mcp_session_id: str) -> Principal | None:
    """The user of the newest authenticated, unexpired login bound to this MCP session here, else None."""
    if len(mcp_session_id) > 128:
        return None
    connection.set_tenant(auth.tenant.tenant)
    session = (
        AuthSession.objects.select_related("application")
        .filter(
            mcp_session_id=mcp_session_id,
            application__slug=auth.app.slug,
            status=AuthSession.Status.AUTHENTICATED,
            expires_at__gt=timezone.now(),
        )
        .order_by("-authenticated_at")
        .first()
    )
    return principal_of(session, auth.tenant.slug) if session is not None else None


def _text(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": json.dumps(data)}]


def run_tool(
    name: str,
    arguments: dict[str, Any],
    auth: RequestAuth,
    actor: Any,
    *,
    mcp_session_id: str = "",
    origin: audit_context.RequestContext | None = None,
) -> list[dict[str, Any]]:
    """Run one login tool in the current tenant (sync). Returns content dicts; raises LoginToolError.

    `mcp_session_id` (handshake-era MCP sessions): `oauth_start` binds the login to that session. `origin`: the
    request's context (client IP, user agent) when it is not the bound one (the MCP endpoint passes it)."""
    from rbac.models import Application

    connection.set_tenant(auth.tenant.tenant)
    if name == "oauth_start":
        app = Application.objects.get(slug=auth.app.slug)
        client = login_client(auth.tenant.tenant)
        verifier = secrets.token_urlsafe(48)
        user_code = new_user_code()
        ip, user_agent = client_origin(origin)
        session = AuthSession(
            application=app,
            code_verifier=verifier,
            mcp_session_id=mcp_session_id[:128],
            started_ip=ip,
            started_user_agent=user_agent,
            user_code_hash=user_code_digest(user_code),
        )
        session.save()
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": callback_url(auth.tenant.tenant),
            "scope": LOGIN_SCOPE,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
            "state": session.state,
            "resource": auth.app.resource,
        }
        audit_session(actor, "mcp.auth_session_started", session, ip=ip, user_agent=user_agent)
        return _text(
            {
                "session_id": session.pk,
                "authorization_url": f"{issuer.endpoint('authorize', auth.tenant.tenant)}?{urlencode(params)}",
                "status": AuthSession.Status.PENDING,
                "expires_in": pending_ttl(),
                "user_code": user_code,
                "message": start_message(user_code),
            }
        )
    if not isinstance(arguments.get("session_id"), str) or not arguments["session_id"]:
        raise LoginToolError("session_id is required (the value returned by oauth_start).")
    session = _session_for(arguments, auth)
    if name == "oauth_status":
        if session is None:
            return _text({"status": "not_found"})
        status = _expire_if_due(session)
        body: dict[str, Any] = {"status": status}
        if status == AuthSession.Status.AUTHENTICATED and session.user is not None:
            body["email"] = session.user.email
        return _text(body)
    if session is None:
        return _text({"status": "not_found"})
    if name == "oauth_logout":
        if session.status in (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED):
            session.status = AuthSession.Status.LOGGED_OUT
            session.save(update_fields=["status"])
            audit_session(actor, "mcp.auth_session_logged_out", session)
            notify.tools_changed(session.mcp_session_id)
        return _text({"status": session.status})
    if name == "oauth_authenticate":
        token = arguments.get("jwt_token")
        if not isinstance(token, str) or not token:
            raise LoginToolError("jwt_token is required.")
        status = _expire_if_due(session)
        if status not in (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED):
            return _text({"status": status})
        checked = resolve(auth.tenant.slug, auth.app.slug, token)  # the same checks as a bearer token
        connection.set_tenant(auth.tenant.tenant)
        if checked.principal is None:
            raise LoginToolError(f"The token was rejected: {checked.token_error or 'invalid token'}.")
        if session.user_id is not None and session.user_id != checked.principal.user_id:
            raise LoginToolError("This session is bound to another user; start a new login with oauth_start.")
        mark_authenticated(session, checked.principal.user_id, via="oauth_authenticate")
        return _text({"status": session.status, "email": checked.principal.email})
    if name == "oauth_user_info":
        status = _expire_if_due(session)
        principal = principal_of(session, auth.tenant.slug) if status == AuthSession.Status.AUTHENTICATED else None
        if principal is None:
            return _text({"status": status if status != AuthSession.Status.AUTHENTICATED else "not_found"})
        return _text({"status": status, **principal.user_info()})
    raise LoginToolError(f"Unknown login tool: {name}")


def mark_authenticated(session: AuthSession, user_id: int, *, via: str) -> None:
    """Bind a token's user to a pending session, or refresh its own user's session (`oauth_authenticate`: the
    caller holds that user's access token for this endpoint, so no confirmation page). Lives `session_ttl()`."""
    from accounts.models import User

    session.user = User.objects.get(pk=user_id)
    session.status = AuthSession.Status.AUTHENTICATED
    session.authenticated_at = timezone.now()
    session.expires_at = session.authenticated_at + timedelta(seconds=session_ttl())
    session.save(update_fields=["user", "status", "authenticated_at", "expires_at"])
    audit_session(session.user, "mcp.auth_session_authenticated", session, via=via)
    notify.tools_changed(session.mcp_session_id)
