"""Writes of the MCP endpoint: seeding an application's tool policies; confirming or declining a login;
revoking login sessions (dashboard) and ending a user's login-tool sessions."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import timedelta
from enum import Enum
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.writes import service
from mcp_endpoint import notify
from mcp_endpoint.login import audit_session
from mcp_endpoint.models import USER_CODE_ATTEMPTS, AuthSession, session_ttl, user_code_digest
from mcp_endpoint.registry import Registry, registry
from rbac import services as rbac_services
from rbac.models import Application, ToolPolicy


@service
def seed_tool_policies(
    *, actor: Any, application: Application, tools: Iterable[str] | None = None, source: Registry | None = None
) -> list[str]:
    """Create the missing `ToolPolicy` rows of `application` from registered tools' declared requirements.

    Existing rows are never changed (an admin's edit wins over the code). Returns the tools seeded."""
    source = source or registry
    names = list(tools) if tools is not None else source.names()
    existing = set(ToolPolicy.objects.filter(application=application).values_list("tool_name", flat=True))
    created = []
    for name in names:
        tool = source.get(name)
        if tool is None:
            raise ValueError(f"No registered tool named {name!r}")
        if name in existing:
            continue
        rbac_services.upsert_tool_policy.nested(
            actor=actor, application=application, tool_name=name, description=tool.description, **tool.requirement
        )
        created.append(name)
    return created


DENY = AuditEvent.Outcome.DENY


class Confirmation(str, Enum):
    """The outcome of `confirm_auth_session` / `decline_auth_session`."""

    CONFIRMED = "confirmed"
    DECLINED = "declined"
    CODE_MISMATCH = "code_mismatch"
    DENIED = "denied"  # too many wrong codes: the session is ended
    UNAVAILABLE = "unavailable"  # not pending, expired, no callback yet, or another user's


def _awaiting(session_id: str, user: Any) -> AuthSession | None:
    """The pending, unexpired session whose callback got `user`'s token, locked for this transaction."""
    session = (
        AuthSession.objects.select_for_update()
        .select_related("application")
        .filter(pk=session_id, status=AuthSession.Status.PENDING, expires_at__gt=timezone.now())
        .first()
    )
    if session is None or session.callback_user_id is None or session.callback_user_id != user.pk:
        return None
    return session


@transaction.atomic
def record_login_callback(*, session_id: str, user_id: int) -> bool:
    """Note the user whose token the callback got. Never binds (the user must still confirm); single use:
    False when the session is not pending, expired or already had its callback."""
    updated = AuthSession.objects.filter(
        pk=session_id, status=AuthSession.Status.PENDING, expires_at__gt=timezone.now(), callback_user__isnull=True
    ).update(callback_user_id=user_id, callback_at=timezone.now())
    return updated == 1


@transaction.atomic
def confirm_auth_session(*, actor: Any, session_id: str, user_code: str) -> Confirmation:
    """Bind a pending session to `actor`, who must be its callback's user, if `user_code` is the session's
    code (compared in constant time). Once only: a bound, denied or expired session is unavailable.
    After `USER_CODE_ATTEMPTS` wrong codes the session is denied."""
    session = _awaiting(session_id, actor)
    if session is None:
        return Confirmation.UNAVAILABLE
    if not session.user_code_hash or not hmac.compare_digest(user_code_digest(user_code), session.user_code_hash):
        session.code_attempts += 1
        fields = ["code_attempts"]
        audit_session(actor, "mcp.auth_session_code_mismatch", session, DENY, attempt=session.code_attempts)
        if session.code_attempts >= USER_CODE_ATTEMPTS:
            session.status, session.ended_at = AuthSession.Status.DENIED, timezone.now()
            fields += ["status", "ended_at"]
            audit_session(actor, "mcp.auth_session_declined", session, DENY, reason="too many wrong codes")
        session.save(update_fields=fields)
        return Confirmation.DENIED if session.status == AuthSession.Status.DENIED else Confirmation.CODE_MISMATCH
    now = timezone.now()
    session.user_id = actor.pk
    session.status = AuthSession.Status.AUTHENTICATED
    session.authenticated_at = now
    session.expires_at = now + timedelta(seconds=session_ttl())
    session.save(update_fields=["user", "status", "authenticated_at", "expires_at"])
    audit_session(actor, "mcp.auth_session_confirmed", session)
    audit_session(actor, "mcp.auth_session_authenticated", session, via="confirmation")
    mcp_session_id = session.mcp_session_id
    transaction.on_commit(lambda: notify.tools_changed(mcp_session_id))
    return Confirmation.CONFIRMED


@transaction.atomic
def decline_auth_session(*, actor: Any, session_id: str) -> Confirmation:
    """The callback's user refuses the login: the session is denied for good (it never binds)."""
    session = _awaiting(session_id, actor)
    if session is None:
        return Confirmation.UNAVAILABLE
    session.status, session.ended_at = AuthSession.Status.DENIED, timezone.now()
    session.save(update_fields=["status", "ended_at"])
    audit_session(actor, "mcp.auth_session_declined", session, DENY, reason="declined by the user")
    return Confirmation.DECLINED


@service
def revoke_auth_sessions(sessions: Iterable[AuthSession], *, actor: Any) -> int:
    """Log out login-tool sessions (the dashboard's "revoke" action); sessions already logged out are left alone.
    After commit each one's MCP client is told its tool list changed. Returns how many were revoked."""
    count = 0
    for session in sessions:
        if session.status == AuthSession.Status.LOGGED_OUT:
            continue
        session.status = AuthSession.Status.LOGGED_OUT
        session.save(update_fields=["status"])
        audit_session(actor, "mcp.auth_session_revoked", session)
        mcp_session_id = session.mcp_session_id
        transaction.on_commit(lambda mcp_session_id=mcp_session_id: notify.tools_changed(mcp_session_id))
        count += 1
    return count


def end_user_sessions(*, user: Any) -> int:
    """Log out every live login-tool session of `user` (caller's transaction); returns how many.

    Sessions are read from the database on every request, so the change counts from the commit on."""
    live = (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED)
    held = AuthSession.objects.filter(Q(user=user) | Q(callback_user=user), status__in=live)
    return held.update(status=AuthSession.Status.LOGGED_OUT)


def _user_access_ended(sender: Any, user: Any, reason: str, **kwargs: Any) -> dict[str, int]:
    return {"mcp_session_count": end_user_sessions(user=user)}
