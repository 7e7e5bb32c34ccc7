"""Notifying approvers: email to each approver, and a webhook signed with HMAC-SHA256 over timestamp and body,
whose signature a receiver verifies and whose tampered or replayed copies it refuses."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from approvals import notify, services, signing
from approvals.models import ApprovalSettings
from audit.models import AuditEvent
from rbac import services as rbac
from rbac.models import ToolPolicy
from tests.factories import ApplicationFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
SECRET = "s" * 40


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def request_row(in_acme):  # type: ignore[no-untyped-def]
    role = RoleFactory(name="approver")
    caller, ann, ben = (UserFactory(email=f"{n}@acme.test") for n in ("caller", "ann", "ben"))
    for user in (ann, ben):
        rbac.grant_role(actor="tests", role=role, user=user)
    policy = ToolPolicy.objects.create(
        application=ApplicationFactory(slug="ops"), tool_name="deploy", approval="others", approval_role="approver"
    )
    return services.request_for_policy(policy=policy, caller=caller, arguments={"env": "prod"})


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_approvers_get_an_email_and_a_signed_webhook(request_row, receiver, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    services.save_settings(ApprovalSettings(pk=1, webhook_url=receiver), actor="tests", webhook_secret=SECRET)
    channels = notify.notify_request(str(request_row.pk))
    assert channels["email"]["recipients"] == ["ann@acme.test", "ben@acme.test"]
    [mail] = mailoutbox
    assert mail.subject == "Approval needed: deploy" and f"/t/acme/approvals/{request_row.pk}/" in mail.body
    [(headers, body)] = Receiver.received
    assert channels["webhook"]["status"] == 204
    assert signing.verify(SECRET, headers, body)
    payload = json.loads(body)
    assert payload["type"] == "approval.requested" and payload["approval"]["id"] == str(request_row.pk)
    assert payload["approval"]["arguments"] is None  # the tool's policy does not log arguments
    event = AuditEvent.objects.get(action="approval.notified", data__approval_id=str(request_row.pk))
    assert event.data["channels"]["email"]["sent"] == 1 and SECRET not in json.dumps(event.data)
    assert notify.notify_request(str(request_row.pk)) == {}  # once only


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_a_tampered_or_replayed_webhook_fails_verification(request_row, receiver) -> None:  # type: ignore[no-untyped-def]
    services.save_settings(ApprovalSettings(pk=1, webhook_url=receiver), actor="tests", webhook_secret=SECRET)
    notify.notify_request(str(request_row.pk))
    [(headers, body)] = Receiver.received
    assert signing.verify(SECRET, headers, body)
    assert not signing.verify(SECRET, headers, body.replace(b"deploy", b"deplox"))
    assert not signing.verify("t" * 40, headers, body)
    forged = {**headers, signing.TIMESTAMP_HEADER: str(int(headers[signing.TIMESTAMP_HEADER]) + 1)}
    assert not signing.verify(SECRET, forged, body)
    assert not signing.verify(SECRET, headers, body, now=time.time() + signing.REPLAY_WINDOW + 5)


def test_the_secret_lives_in_vault_not_in_the_database(in_acme) -> None:  # type: ignore[no-untyped-def]
    saved = services.save_settings(ApprovalSettings(pk=1), actor="tests", webhook_secret=SECRET)
    version = saved.webhook_secret_version  # Vault keeps its versions across tests: at least this one
    assert version >= 1 and SECRET not in json.dumps(list(ApprovalSettings.objects.values()), default=str)
    assert services.webhook_secret() == SECRET
    event = AuditEvent.objects.filter(action="approval.settings_changed").latest("seq")
    assert event.data["webhook_secret_version"] == version and SECRET not in json.dumps(event.data)
    with pytest.raises(Exception, match="at least 32"):
        services.save_settings(ApprovalSettings.current(), actor="tests", webhook_secret="short")
