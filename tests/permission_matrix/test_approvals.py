"""The permission matrix of the approval pages (/t/<tenant>/approvals/…): anonymous, an end user holding nothing,
an auditor, the tenant admin, the approver (holds the approver role), the caller, and another tenant's admin.

The pages are no dashboard pages: who sees a request is decided by the request (its caller, and the holders of its
approver role), not by dashboard permissions, so a tenant admin without the role sees nothing either."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.roles import DashboardRole
from approvals import services
from approvals.models import ApprovalRequest
from rbac import services as rbac
from rbac.models import ToolPolicy
from tests.factories import ApplicationFactory, RoleFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.mfa import enroll_totp, sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


@pytest.fixture
def request_pk(acme, globex) -> str:  # type: ignore[no-untyped-def]
    with schema_context(acme.schema_name):
        role = RoleFactory(name="matrix-approver")
        caller = UserFactory(email="matrix-caller@acme.test")
        approver = UserFactory(email="matrix-approver@acme.test")
        UserFactory(email="matrix-user@acme.test")
        UserFactory(email="matrix-auditor@acme.test", is_staff=True, dashboard_roles=[DashboardRole.AUDITOR])
        rbac.grant_role(actor="tests", role=role, user=approver)
        policy = ToolPolicy.objects.create(
            application=ApplicationFactory(slug="matrix-app"),
            tool_name="deploy",
            approval="others",
            approval_role="matrix-approver",
        )
        return str(services.request_for_policy(policy=policy, caller=caller, arguments={}).pk)


def _fresh(email: str) -> Client:
    client = sign_in("acme", email)
    enroll_totp(client, "acme")
    return client


def _status(pk: str) -> str:
    with schema_context("tenant_acme"):
        return ApprovalRequest.objects.get(pk=pk).status


def _callers() -> dict[str, Client]:
    return {
        "anonymous": Client(),
        "end user": _fresh("matrix-user@acme.test"),
        "auditor": _fresh("matrix-auditor@acme.test"),
        "tenant admin": log_in("acme", "admin@acme.test", ADMIN_PASSWORD),
        "other tenant's admin": log_in("globex", "admin@globex.test", ADMIN_PASSWORD),
    }


# (list page shows the request, detail status, decide status) per caller; the decide POST never changes the request
EXPECTED: dict[str, tuple[Any, int, int]] = {
    "anonymous": (302, 302, 302),
    "end user": (False, 404, 404),
    "auditor": (False, 404, 404),
    "tenant admin": (False, 404, 404),
    "other tenant's admin": (302, 302, 302),
}


def test_who_may_see_and_answer_an_approval_request(request_pk: str) -> None:
    base = f"/t/acme/approvals/{request_pk}/"
    for who, client in _callers().items():
        listed, detail, decide = EXPECTED[who]
        page = client.get("/t/acme/approvals/")
        if listed == 302:
            assert page.status_code == 302 and "/accounts/login/" in page["Location"], who
        else:
            assert page.status_code == 200 and (request_pk in page.content.decode()) is listed, who
        assert client.get(base).status_code == detail, who
        assert client.post(base + "decide", {"decision": "approve"}).status_code == decide, who
        assert _status(request_pk) == "pending", who


def test_the_approver_sees_and_answers_and_the_caller_only_sees(request_pk: str) -> None:
    caller = _fresh("matrix-caller@acme.test")
    assert request_pk not in caller.get("/t/acme/approvals/").content.decode()
    assert caller.get(f"/t/acme/approvals/{request_pk}/").status_code == 200
    assert caller.post(f"/t/acme/approvals/{request_pk}/decide", {"decision": "approve"}).status_code == 403
    approver = _fresh("matrix-approver@acme.test")
    assert request_pk in approver.get("/t/acme/approvals/").content.decode()
    assert approver.post(f"/t/acme/approvals/{request_pk}/decide", {"decision": "approve"}).status_code == 302
    assert _status(request_pk) == "approved"
    assert approver.get(f"/t/acme/approvals/{request_pk}/").status_code == 200  # still visible once decided
