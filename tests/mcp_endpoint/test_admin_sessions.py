"""The dashboard's MCP login sessions: read-only, and "revoke" is one service call (`revoke_auth_sessions`) that
logs the sessions out in one transaction, audits each, and notifies their MCP clients only after commit."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from mcp_endpoint.models import AuthSession
from rbac.models import Application

pytestmark = pytest.mark.django_db
LIST = "/t/acme/admin/mcp_endpoint/authsession/"


def _session(email: str) -> AuthSession:
    session = AuthSession(
        application=Application.objects.get(slug="demo"),
        code_verifier="v" * 43,
        status=AuthSession.Status.AUTHENTICATED,
    )
    session.user = User.objects.get(email=email)
    session.authenticated_at = timezone.now()
    session.save()
    return session


def test_revoke_logs_sessions_out_and_notifies_after_commit(
    admin, demo_users, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    sessions = [_session("alice@acme.test"), _session("bob@acme.test")]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin.post(LIST, {"action": "revoke", "_selected_action": [s.pk for s in sessions]})
    assert response.status_code == 302
    assert len(callbacks) == 2  # one tools/list_changed per session, sent only once the transaction commits
    for session in sessions:
        session.refresh_from_db()
        assert session.status == AuthSession.Status.LOGGED_OUT
    # Only these sessions' events: live-server tests elsewhere in the run commit events of their own to tenant_acme.
    mine = {session.state[:16] for session in sessions}

    def revoked() -> list[tuple[str, str]]:
        events = AuditEvent.objects.filter(action="mcp.auth_session_revoked", data__session__in=mine)
        return sorted((e.actor_label, e.data["session"]) for e in events)

    assert revoked() == sorted(("admin@acme.test", key) for key in mine)
    # Again: nothing left to revoke, nothing written.
    admin.post(LIST, {"action": "revoke", "_selected_action": [s.pk for s in sessions]})
    assert len(revoked()) == 2


def test_sessions_cannot_be_deleted_or_edited_in_the_dashboard(admin, demo_users) -> None:  # type: ignore[no-untyped-def]
    session = _session("alice@acme.test")
    assert admin.post(f"{LIST}{quote(session.pk)}/delete/", {"post": "yes"}).status_code == 403
    assert admin.post(f"{LIST}{quote(session.pk)}/change/", {}).status_code == 403
    assert AuthSession.objects.filter(pk=session.pk).exists()
