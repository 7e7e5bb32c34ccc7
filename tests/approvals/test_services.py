"""The approval rules of `approvals.services`, on the real database: binding, who may decide, N of M, expiry, use."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from rbac import services as rbac
from rbac.models import ToolPolicy
from tests.factories import ApplicationFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status


@pytest.fixture
def world(in_acme):  # type: ignore[no-untyped-def]
    app = ApplicationFactory(slug="ops")
    role = RoleFactory(name="approver")
    caller, ann, ben, cid, outsider = (
        UserFactory(email=f"{n}@acme.test") for n in ("caller", "ann", "ben", "cid", "out")
    )
    for user in (caller, ann, ben, cid):
        rbac.grant_role(actor="tests", role=role, user=user)
    policy = ToolPolicy.objects.create(
        application=app, tool_name="deploy", approval="others", approval_role="approver", log_arguments=True
    )
    return {"app": app, "policy": policy, "caller": caller, "ann": ann, "ben": ben, "cid": cid, "outsider": outsider}


def _request(w, arguments=None, **policy):  # type: ignore[no-untyped-def]
    for key, value in policy.items():
        setattr(w["policy"], key, value)
    w["policy"].save()
    return services.request_for_policy(policy=w["policy"], caller=w["caller"], arguments=arguments or {"env": "prod"})


def _events(action: str, *requests: ApprovalRequest) -> int:
    """Events of these requests only (live-server tests commit approval events to tenant_acme too)."""
    ids = [str(r.pk) for r in requests]
    return AuditEvent.objects.filter(action=action, data__approval_id__in=ids).count()


def test_args_hash_is_canonical_and_ignores_user_info() -> None:
    assert services.args_hash({"b": 1, "a": [1, 2]}) == services.args_hash({"a": [1, 2], "b": 1, "_user_info": {}})
    assert services.args_hash({"a": 1}) != services.args_hash({"a": 2})


def test_identical_pending_call_reuses_its_request_and_changed_arguments_make_a_new_one(world) -> None:  # type: ignore[no-untyped-def]
    first = _request(world)
    assert _request(world).pk == first.pk
    second = _request(world, {"env": "staging"})
    assert second.pk != first.pk
    assert _events("approval.requested", first, second) == 2


def test_caller_cannot_approve_their_own_others_request(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world)
    with pytest.raises(services.ApprovalError) as exc:
        services.decide(request, world["caller"], True)
    assert exc.value.code == "own_request"
    request.refresh_from_db()
    assert request.status == Status.PENDING and not request.decisions.exists()


def test_approver_needs_the_role(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world)
    with pytest.raises(services.ApprovalError) as exc:
        services.decide(request, world["outsider"], True)
    assert exc.value.code == "not_approver"


def test_one_approval_of_others_approves_and_is_used_once(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world)
    decided = services.decide(request, world["ann"], True)
    assert decided.status == Status.APPROVED
    digest = services.args_hash({"env": "prod"})
    used = services.consume(caller=world["caller"], application=world["app"], tool_name="deploy", args_hash=digest)
    assert used is not None and used.pk == request.pk and used.use_count == 1
    again = services.consume(caller=world["caller"], application=world["app"], tool_name="deploy", args_hash=digest)
    assert again is None  # single use: a replayed approval covers nothing
    assert _events("approval.used", request) == 1


def test_window_covers_identical_calls_only(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world, approval_window=300)
    services.decide(request, world["ann"], True)
    digest = services.args_hash({"env": "prod"})
    for expected in (1, 2):
        used = services.consume(caller=world["caller"], application=world["app"], tool_name="deploy", args_hash=digest)
        assert used is not None and used.use_count == expected
    other = services.args_hash({"env": "staging"})
    assert (
        services.consume(caller=world["caller"], application=world["app"], tool_name="deploy", args_hash=other) is None
    )
    assert services.consume(caller=world["ann"], application=world["app"], tool_name="deploy", args_hash=digest) is None


def test_n_of_m_needs_n_distinct_approvers(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world, approval="others_n", approval_count=2)
    assert request.required_count == 2
    assert services.decide(request, world["ann"], True).status == Status.PENDING
    with pytest.raises(services.ApprovalError) as exc:
        services.decide(request, world["ann"], True)
    assert exc.value.code == "already_decided"
    assert services.decide(request, world["ben"], True).status == Status.APPROVED
    assert services.status(request.pk).approvals == 2
    with pytest.raises(services.ApprovalError):
        services.decide(request, world["cid"], True)


def test_one_denial_denies(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world, approval="others_n", approval_count=3)
    services.decide(request, world["ann"], True)
    assert services.decide(request, world["ben"], False).status == Status.DENIED
    assert services.status(request.pk).denied_by == "ben@acme.test"
    digest = services.args_hash({"env": "prod"})
    assert (
        services.consume(caller=world["caller"], application=world["app"], tool_name="deploy", args_hash=digest) is None
    )


def test_self_mode_only_the_caller_confirms(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world, approval="self", approval_role="")
    with pytest.raises(services.ApprovalError) as exc:
        services.decide(request, world["ann"], True)
    assert exc.value.code == "self_only"
    assert services.decide(request, world["caller"], True).status == Status.APPROVED


def test_expired_request_cannot_be_decided_and_is_expired_by_the_task(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world)
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    request.refresh_from_db()
    assert services.status(request.pk).status == "expired"
    with pytest.raises(services.ApprovalError) as exc:
        services.decide(request, world["ann"], True)
    assert exc.value.code == "expired"
    assert services.expire_due() == 1
    assert services.expire_due() == 0
    request.refresh_from_db()
    assert request.status == Status.EXPIRED
    assert _events("approval.expired", request) == 1


def test_pending_for_lists_what_the_user_may_answer(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world)
    assert [r.pk for r in services.pending_for(world["ann"])] == [request.pk]
    assert services.pending_for(world["caller"]) == []
    assert services.pending_for(world["outsider"]) == []
    services.decide(request, world["ann"], True)
    assert services.pending_for(world["ben"]) == []


def test_display_arguments_follow_the_logging_policy(world) -> None:  # type: ignore[no-untyped-def]
    request = _request(world, {"env": "prod", "api_token": "s3cret"})
    assert request.args_shown and request.display_args["env"] == "prod"
    assert "s3cret" not in str(request.display_args)
    hidden = _request(world, {"env": "x"}, log_arguments=False)
    assert not hidden.args_shown and hidden.display_args == {}


def test_beat_expires_requests_every_minute_and_the_task_is_safe_to_rerun(world) -> None:  # type: ignore[no-untyped-def]
    from django.conf import settings

    from approvals.tasks import expire_due_in_schema
    from authsec_site.celery import app as celery_app

    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["approvals-expiry"]
    assert (
        entry["task"] == "approvals.tasks.expire_due" and entry["schedule"] == settings.APPROVALS_EXPIRY_INTERVAL == 60
    )
    request = _request(world)
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert expire_due_in_schema.apply(args=["tenant_acme"]).get() == 1
    assert expire_due_in_schema.apply(args=["tenant_acme"]).get() == 0
    assert expire_due_in_schema.apply(args=["public"]).get() == 0
