"""An admin logging MCP login sessions out (the dashboard's Tokens & sessions page): one service call
(`revoke_auth_sessions`) that logs the session out, audits it, and notifies its MCP client only after commit. The
session's id — its client's bearer secret — is never in a dashboard page or URL."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from mcp_endpoint.models import AuthSession
from rbac.models import Application

pytestmark = pytest.mark.django_db
TOKENS = "/t/acme/admin/tokens/"


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
        for session in sessions:
            assert admin.post(f"{TOKENS}session/{session.state}/revoke/").status_code == 302
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
    # Again: the sessions are no longer live, so there is nothing to revoke and nothing is written.
    for session in sessions:
        assert admin.post(f"{TOKENS}session/{session.state}/revoke/").status_code == 404
    assert len(revoked()) == 2


def test_a_session_id_is_never_in_a_dashboard_page_or_accepted_in_a_url(admin, demo_users) -> None:  # type: ignore[no-untyped-def]
    session = _session("alice@acme.test")
    listing = admin.get(TOKENS, {"kind": "session"})
    assert listing.status_code == 200
    html = listing.content.decode()
    assert session.state[:12] in html and session.pk not in html
    confirm = admin.get(f"{TOKENS}session/{session.state}/revoke/")
    assert confirm.status_code == 200 and session.pk not in confirm.content.decode()
    # The id in the URL's place of the state finds nothing; the old changelist and its change page are gone.
    assert admin.post(f"{TOKENS}session/{session.pk}/revoke/").status_code == 404
    assert admin.get("/t/acme/admin/mcp_endpoint/authsession/").status_code == 404
    assert admin.get(f"/t/acme/admin/mcp_endpoint/authsession/{session.pk}/change/").status_code == 404
    session.refresh_from_db()
    assert session.status == AuthSession.Status.AUTHENTICATED
