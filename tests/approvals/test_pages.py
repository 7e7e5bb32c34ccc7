"""The approval pages: the queue, one request's page and the approve/deny POST (CSRF, fresh second factor), the
dashboard count, who may see what, and requests of another tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from approvals import services
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from rbac import services as rbac
from rbac.models import ToolPolicy
from tests.factories import ApplicationFactory, RoleFactory, UserFactory
from tests.support.mfa import code, enroll_totp, sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


@pytest.fixture
def world(acme, globex) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="ops")
        role = RoleFactory(name="release-approver")
        caller = UserFactory(email="caller@acme.test")
        approver = UserFactory(email="approver@acme.test")
        second = UserFactory(email="second@acme.test")
        outsider = UserFactory(email="outsider@acme.test")
        for user in (caller, approver, second):
            rbac.grant_role(actor="tests", role=role, user=user)
        policy = ToolPolicy.objects.create(
            application=app,
            tool_name="deploy",
            approval="others",
            approval_role="release-approver",
            log_arguments=True,
        )
        request = services.request_for_policy(
            policy=policy, caller=caller, arguments={"env": "prod", "api_key": "do-not-show-me"}
        )
    with schema_context(globex.schema_name):
        UserFactory(email="approver@acme.test")  # the same email in another tenant is another person
    return {"policy": policy, "request": request, "caller": caller, "approver": approver, "outsider": outsider}


def _fresh(email: str) -> tuple[Client, str]:
    """A signed-in client whose user enrolled TOTP (enrolling verifies the factor: the session is fresh)."""
    client = sign_in("acme", email)
    key, _codes = enroll_totp(client, "acme")
    return client, key


def _status(world: dict[str, Any]) -> str:
    with schema_context("tenant_acme"):
        return ApprovalRequest.objects.get(pk=world["request"].pk).status


def test_anonymous_is_sent_to_the_login_page(world) -> None:  # type: ignore[no-untyped-def]
    for path in ("/t/acme/approvals/", f"/t/acme/approvals/{world['request'].pk}/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/accounts/login/")
    response = Client().post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert _status(world) == "pending"


def test_the_queue_shows_the_request_with_redacted_arguments(world) -> None:  # type: ignore[no-untyped-def]
    page = sign_in("acme", "approver@acme.test").get("/t/acme/approvals/")
    body = page.content.decode()
    assert page.status_code == 200
    for shown in ("deploy", "ops", "caller@acme.test", "prod", "Expires", "Approve", "Deny"):
        assert shown in body, shown
    assert "do-not-show-me" not in body


def test_hidden_arguments_stay_hidden(world) -> None:  # type: ignore[no-untyped-def]
    with schema_context("tenant_acme"):
        ToolPolicy.objects.filter(pk=world["policy"].pk).update(log_arguments=False)
        world["policy"].refresh_from_db()
        services.request_for_policy(policy=world["policy"], caller=world["caller"], arguments={"env": "staging"})
    body = sign_in("acme", "approver@acme.test").get("/t/acme/approvals/").content.decode()
    assert "staging" not in body and "hidden by the tool's argument-logging policy" in body


def test_the_dashboard_home_counts_what_waits(world) -> None:  # type: ignore[no-untyped-def]
    body = sign_in("acme", "approver@acme.test").get("/t/acme/").content.decode()
    assert "<strong>1</strong> approval request waits for you" in body
    assert "approval request" not in sign_in("acme", "outsider@acme.test").get("/t/acme/").content.decode()


def test_approving_needs_a_second_factor_from_the_last_five_minutes(world) -> None:  # type: ignore[no-untyped-def]
    _enrolled, key = _fresh("approver@acme.test")
    client = sign_in("acme", "approver@acme.test")  # a new session: signed in with the password only
    decide_url = f"/t/acme/approvals/{world['request'].pk}/decide"
    refused = client.post(decide_url, {"decision": "approve"})
    assert refused.status_code == 302 and refused["Location"].startswith("/t/acme/account/verify/")
    assert _status(world) == "pending"
    verified = client.post(refused["Location"], {"method": "totp", "code": code(key, 1)})
    assert verified.status_code == 302 and verified["Location"] == f"/t/acme/approvals/{world['request'].pk}/"
    approved = client.post(decide_url, {"decision": "approve"})
    assert approved.status_code == 302 and _status(world) == "approved"
    with schema_context("tenant_acme"):
        event = AuditEvent.objects.filter(action="approval.approved").latest("seq")
        assert event.actor_label == "approver@acme.test"
        assert event.data["approval_id"] == str(world["request"].pk) and event.data["approvers"] == [
            "approver@acme.test"
        ]


def test_a_user_without_any_factor_is_sent_to_set_one_up(world) -> None:  # type: ignore[no-untyped-def]
    client = sign_in("acme", "approver@acme.test")
    response = client.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"})
    assert response.status_code == 302 and "/account/" in response["Location"]
    assert _status(world) == "pending"


def test_the_decision_post_needs_the_csrf_token(world) -> None:  # type: ignore[no-untyped-def]
    fresh, _key = _fresh("approver@acme.test")
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = fresh.cookies
    response = strict.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"})
    assert response.status_code == 403 and _status(world) == "pending"


def test_the_caller_cannot_approve_their_own_request(world) -> None:  # type: ignore[no-untyped-def]
    client, _key = _fresh("caller@acme.test")
    page = client.get(f"/t/acme/approvals/{world['request'].pk}/")
    assert page.status_code == 200 and "You cannot approve your own request" in page.content.decode()
    assert 'value="approve"' not in page.content.decode()
    response = client.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"})
    assert response.status_code == 403 and "someone else must" in response.content.decode()
    assert _status(world) == "pending"
    assert world["request"].pk not in [r.pk for r in _pending_for("caller@acme.test")]


def _pending_for(email: str) -> list[ApprovalRequest]:
    from accounts.models import User

    with schema_context("tenant_acme"):
        return services.pending_for(User.objects.get(email=email))


def test_someone_without_the_role_sees_nothing(world) -> None:  # type: ignore[no-untyped-def]
    client, _key = _fresh("outsider@acme.test")
    assert "Nothing waits for you" in client.get("/t/acme/approvals/").content.decode()
    assert client.get(f"/t/acme/approvals/{world['request'].pk}/").status_code == 404
    assert client.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"}).status_code == 404
    assert _status(world) == "pending"


def test_another_tenants_user_cannot_reach_the_request(world) -> None:  # type: ignore[no-untyped-def]
    other = sign_in("globex", "approver@acme.test")  # same email, globex's user
    _key = enroll_totp(other, "globex")
    pk = world["request"].pk
    assert other.get(f"/t/globex/approvals/{pk}/").status_code == 404
    assert other.post(f"/t/globex/approvals/{pk}/decide", {"decision": "approve"}).status_code == 404
    # Their globex session is no session in acme.
    response = other.post(f"/t/acme/approvals/{pk}/decide", {"decision": "approve"})
    assert response.status_code in (302, 403) and _status(world) == "pending"


def test_a_denial_is_final(world) -> None:  # type: ignore[no-untyped-def]
    client, _key = _fresh("approver@acme.test")
    assert client.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "deny"}).status_code == 302
    assert _status(world) == "denied"
    second, _ = _fresh("second@acme.test")
    again = second.post(f"/t/acme/approvals/{world['request'].pk}/decide", {"decision": "approve"})
    assert again.status_code == 409 and _status(world) == "denied"
