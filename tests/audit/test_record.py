"""audit.record: actor and target snapshots, request context, redaction of secrets."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

import audit
from accounts.models import User
from audit.models import AuditEvent
from audit.recorder import Actor
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db


def test_records_actor_and_target_snapshots(in_acme: Tenant) -> None:
    user = UserFactory(email="snap@acme.test")
    event = audit.record(user, "user.example_action", target=user, data={"k": "v"})
    user.email = "renamed@acme.test"
    user.save()
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", str(user.pk), "snap@acme.test")
    assert (event.target_type, event.target_id, event.target_label) == ("accounts.user", str(user.pk), "snap@acme.test")
    assert event.data == {"k": "v"}


def test_system_and_client_actors(in_acme: Tenant) -> None:
    assert audit.record(None, "system.tick").actor_label == "system"
    client_event = audit.record(Actor("client", "cli-123", "Claude Desktop"), "oauth.token_issued")
    assert (client_event.actor_type, client_event.actor_id) == ("client", "cli-123")


def test_secret_values_are_redacted_at_any_depth(in_acme: Tenant) -> None:
    event = audit.record(
        "tests",
        "service.secret_replaced",
        data={
            "password": "hunter2",
            "nested": {"api_key": "k-123", "client_secret": "s"},
            "items": [{"access_token": "t"}],
            "token_type": "Bearer",
            "secret_version": 3,
            "note": "fine",
        },
    )
    assert event.data == {
        "password": "[redacted]",
        "nested": {"api_key": "[redacted]", "client_secret": "[redacted]"},
        "items": [{"access_token": "[redacted]"}],
        "token_type": "Bearer",
        "secret_version": 3,
        "note": "fine",
    }


def test_rejects_badly_named_actions(in_acme: Tenant) -> None:
    with pytest.raises(ValueError, match="dotted"):
        audit.record("tests", "NotDotted")


def test_event_rolls_back_with_the_write_it_describes(in_acme: Tenant) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record("tests", "test.rolled_back")
        raise RuntimeError("write failed")
    assert not AuditEvent.objects.filter(action="test.rolled_back").exists()


def test_http_login_events_carry_request_id_and_ip(acme: Tenant) -> None:
    from django_tenants.utils import schema_context

    client = Client(REMOTE_ADDR="203.0.113.9")
    client.post(
        "/t/acme/admin/login/",
        {"username": "admin@acme.test", "password": "wrong-password"},
        HTTP_X_REQUEST_ID="req-failed-login-1",
    )
    client.post(
        "/t/acme/admin/login/",
        {"username": "admin@acme.test", "password": ADMIN_PASSWORD},
        HTTP_X_REQUEST_ID="req-good-login-1",
    )
    with schema_context(acme.schema_name):
        failed = AuditEvent.objects.get(action="auth.login_failed", request_id="req-failed-login-1")
        assert (failed.outcome, failed.ip, failed.data["email"]) == ("failure", "203.0.113.9", "admin@acme.test")
        assert "wrong-password" not in str(failed.data)
        ok = AuditEvent.objects.get(action="auth.login_succeeded", request_id="req-good-login-1")
        assert ok.actor_label == "admin@acme.test"
        assert ok.actor_id == str(User.objects.get(email="admin@acme.test").pk)


def test_admin_changes_are_audited(acme: Tenant) -> None:
    from django_tenants.utils import schema_context

    client = Client()
    client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    response = client.post(
        "/t/acme/admin/accounts/user/add/",
        {
            "email": "new.hire@acme.test",
            "full_name": "New Hire",
            "usable_password": "true",
            "password1": "a-fine-password-77",
            "password2": "a-fine-password-77",
            **_inline_management("role_bindings"),
            **_inline_management("group_memberships"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:1500]
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.get(action="accounts.user_created", target_label="new.hire@acme.test")
        assert event.actor_label == "admin@acme.test"
        assert event.target_label == "new.hire@acme.test"
        assert event.data["before"] is None and event.data["after"]["full_name"] == "New Hire"
        assert "password" not in event.data["after"]
        assert User.objects.get(email="new.hire@acme.test").check_password("a-fine-password-77")


def _inline_management(prefix: str) -> dict[str, int]:
    return {
        f"{prefix}-TOTAL_FORMS": 0,
        f"{prefix}-INITIAL_FORMS": 0,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }


def test_record_many_links_a_batch_into_the_chain_with_one_insert(
    in_acme: Tenant, django_assert_max_num_queries
) -> None:
    from audit.chain import event_hash
    from audit.context import RequestContext
    from audit.recorder import Entry
    from audit.verify import verify_chain

    before = audit.record("tests", "test.before_batch")
    entries = [
        Entry(
            Actor("user", str(i), f"u{i}@acme.test"),
            "mcp.tool_call",
            target=("rbac.application", "", "demo"),
            data={"tool": f"t{i}", "api_token": "s3cr3t"},
            outcome="allow",
            context=RequestContext(request_id=f"req-{i}", ip="127.0.0.1", user_agent="ua"),
        )
        for i in range(5)
    ]
    with django_assert_max_num_queries(3):  # the lock + head read, at most a savepoint; COPY is not in the query log
        events = audit.record_many(entries)
    rows = list(AuditEvent.objects.filter(seq__gt=before.seq).order_by("seq"))
    assert [row.hash for row in rows] == [event["hash"] for event in events]
    assert [row.id for row in rows] == sorted(row.id for row in rows)  # ids follow the chain order
    assert [row.seq for row in rows] == list(range(before.seq + 1, before.seq + 6))
    assert rows[0].prev_hash == before.hash
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert all(row.hash == event_hash(row) for row in rows)
    assert rows[2].request_id == "req-2" and rows[2].data["api_token"] != "s3cr3t"
    assert verify_chain().broken is None


def test_batch_copy_writes_every_stored_column() -> None:
    from audit.models import COPY_COLUMNS

    stored = {f.column for f in AuditEvent._meta.concrete_fields if not f.primary_key and not f.generated}
    assert set(COPY_COLUMNS) == stored and len(COPY_COLUMNS) == len(stored)


def test_record_many_is_all_or_nothing(in_acme: Tenant) -> None:
    from audit.recorder import Entry

    before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="dotted lower-case"):
        audit.record_many([Entry("tests", "test.fine"), Entry("tests", "Not An Action")])
    assert AuditEvent.objects.count() == before
