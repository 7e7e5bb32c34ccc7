"""Approval requests: the one write path (and the reads other apps rely on). The contract:

- `request_approval(...)` makes a pending request bound to caller, application, tool and `args_hash(arguments)`
  (SHA-256 of the canonical JSON, `_user_info` left out), with its policy copied in (mode, approver role, N,
  expiry, covers window). An identical tool-call request still pending is returned instead of a second one.
  Approvers are notified after commit (dashboard count, email, signed webhook: `approvals.notify`).
  `request_for_policy(...)` does the same from a `rbac.ToolPolicy`.
- `decide(request, approver, approve)` records one approver's answer. It raises `ApprovalError` (nothing written)
  when the request is not pending or has expired, when the approver already answered, for `self` when the
  approver is not the caller, and for `others`/`others_n` when the approver is the caller or does not hold the
  approver role (read from the tenant database now). One denial denies; `required_count` distinct approvals
  approve, and an approval with a covers window sets `covers_until`.
- `consume(...)` lets one call run on an approval: an approved request becomes used (single use); a used one is
  reused only by an identical call (same caller, application, tool, args hash) before `covers_until`. Returns
  None when nothing covers the call. With `request_id` the caller and every binding field given must match.
- `expire_due()` marks pending requests past their expiry expired (Celery beat, every minute; idempotent).
- `status(request_id)` reads the state as a `RequestStatus` (a pending request past expiry reads as expired).
- Every step is audited: approval.requested, approval.notified, approval.approval_recorded (one of N),
  approval.approved, approval.denied, approval.expired, approval.used.
The fresh-second-factor rule of the approval page is the page's (`approvals.views`), not these functions'.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalSettings
from audit import writes
from audit.recorder import record, redact
from audit.writes import service
from authsec_site.lib import vault
from rbac.models import Application, Role, ToolPolicy
from rbac.pin_definitions import canonical_json
from tenants.models import Tenant

logger = logging.getLogger(__name__)
Mode = ApprovalRequest.Mode
Status = ApprovalRequest.Status
MAX_DISPLAY_BYTES = 4096
SYSTEM = "system:approvals"


class ApprovalError(Exception):
    """A decision or use that the rules refuse; `code` names the rule (shown to people as `str(exc)`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- Reads ----------------------------------------------------------------------------------------------------------


def args_hash(arguments: Mapping[str, Any] | None) -> str:
    """SHA-256 (hex) of the canonical JSON of a call's arguments, without the injected `_user_info`."""
    clean = {k: v for k, v in (arguments or {}).items() if k != "_user_info"}
    return hashlib.sha256(canonical_json(clean).encode("utf-8")).hexdigest()


def display_arguments(policy: ToolPolicy | None, arguments: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """The arguments approvers see, by the tool's argument-logging policy: hidden unless `log_arguments`, then
    with values under secret-looking keys redacted (as the audit log does) and large ones cut."""
    if policy is None or not policy.log_arguments:
        return {}, False
    clean = redact({k: v for k, v in (arguments or {}).items() if k != "_user_info"})
    size = len(canonical_json(clean).encode("utf-8"))
    return (clean if size <= MAX_DISPLAY_BYTES else {"truncated": True, "json_bytes": size}), True


def role_holders(role: str) -> Any:
    """Active users holding RBAC role `role` directly or through a group (a QuerySet of `User`)."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(role_bindings__role__name=role) | Q(group_memberships__group__role_bindings__role__name=role))
        .distinct()
    )


def holds_role(user: User, role: str) -> bool:
    return bool(role) and role_holders(role).filter(pk=user.pk).exists()


def approvers_of(request: ApprovalRequest) -> list[User]:
    """Who may decide `request`: the caller for `self`; the approver role's holders but the caller otherwise."""
    if request.mode == Mode.SELF:
        return [request.caller] if request.caller.is_active else []
    return list(role_holders(request.approver_role).exclude(pk=request.caller_id).order_by("email"))


def can_decide(request: ApprovalRequest, user: Any) -> bool:
    """May `user` answer `request` now (pending, not expired, the right person, not answered yet)?"""
    try:
        _check_decider(request, user)
    except ApprovalError:
        return False
    return True


def _pending_for_query(user: User) -> Any:
    """The pending requests `user` may answer, unordered (None for an anonymous or inactive user)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    roles = set(role_holders_roles(user))  # read now: a role removed in the admin stops counting at once
    query = Q(mode=Mode.SELF, caller=user)
    if roles:
        query |= Q(mode__in=[Mode.OTHERS, Mode.OTHERS_N], approver_role__in=roles) & ~Q(caller=user)
    return ApprovalRequest.objects.pending().filter(query).exclude(decisions__approver=user)


def pending_for(user: User) -> list[ApprovalRequest]:
    """The pending requests `user` may answer, oldest first (the approval page)."""
    rows = _pending_for_query(user)
    if rows is None:
        return []
    return list(rows.select_related("application", "caller").prefetch_related("decisions").order_by("created_at"))


def pending_count_for(user: User) -> int:
    """How many requests `pending_for(user)` lists, in two queries whatever their number (the dashboard home)."""
    rows = _pending_for_query(user)
    return 0 if rows is None else rows.count()


def role_holders_roles(user: User) -> list[str]:
    """The RBAC role names `user` holds (direct or through a group), from the database."""
    return list(
        Role.objects.filter(Q(bindings__user=user) | Q(bindings__group__memberships__user=user))
        .values_list("name", flat=True)
        .distinct()
    )


def get_request(request_id: uuid.UUID | str | None) -> ApprovalRequest | None:
    """Request `request_id` of this tenant (None for no such request or a malformed id)."""
    try:
        key = uuid.UUID(str(request_id))
    except ValueError:
        return None
    return (
        ApprovalRequest.objects.select_related("caller", "application")
        .prefetch_related("decisions__approver")
        .filter(pk=key)
        .first()
    )


@dataclass(frozen=True)
class RequestStatus:
    """The state of one request as clients (the MCP call path, CIBA polling) read it."""

    id: uuid.UUID
    status: str  # pending | approved | denied | expired | used
    approvals: int
    required: int
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    covers_until: dt.datetime | None
    denied_by: str | None


def status(request_id: uuid.UUID | str) -> RequestStatus | None:
    """The state of request `request_id` in this tenant, or None when there is no such request."""
    request = get_request(request_id)
    if request is None:
        return None
    denial = next((d for d in request.decisions.all() if not d.approve), None)
    return RequestStatus(
        id=request.id,
        status=request.effective_status,
        approvals=request.approvals_count,
        required=request.required_count,
        expires_at=request.expires_at,
        decided_at=request.decided_at,
        covers_until=request.covers_until,
        denied_by=denial.approver.email if denial else None,
    )


def approval_path(request: ApprovalRequest | uuid.UUID | str) -> str:
    """The path of the approval page of `request` in the current tenant."""
    request_id = request.id if isinstance(request, ApprovalRequest) else request
    return f"/t/{tenant_slug()}/approvals/{request_id}/"


def tenant_slug() -> str:
    """The slug of the current schema's tenant (a `schema_context` sets no real tenant object)."""
    slug = getattr(connection.tenant, "slug", None)
    if slug:
        return str(slug)
    return str(Tenant.objects.values_list("slug", flat=True).get(schema_name=connection.schema_name))


# --- Writes ---------------------------------------------------------------------------------------------------------


def _data(request: ApprovalRequest, **more: Any) -> dict[str, Any]:
    return {
        "approval_id": str(request.id),
        "kind": request.kind,
        "application": request.application.slug if request.application_id else None,
        "tool": request.tool_name,
        "caller": request.caller.email,
        "mode": request.mode,
        **more,
    }


@service
def request_approval(
    *,
    caller: User,
    mode: str,
    kind: str = ApprovalRequest.Kind.TOOL_CALL,
    application: Application | None = None,
    tool_name: str = "",
    arguments: Mapping[str, Any] | None = None,
    display_args: Mapping[str, Any] | None = None,
    args_shown: bool = False,
    required_count: int = 1,
    approver_role: str = "",
    expires_in: int = 600,
    window: int = 0,
    binding_message: str = "",
    scope: str = "",
    client_id: str = "",
    extra: Mapping[str, Any] | None = None,
    actor: Any = None,
) -> ApprovalRequest:
    """A pending request (see the module's contract); `actor` defaults to the caller."""
    if mode not in (Mode.SELF, Mode.OTHERS, Mode.OTHERS_N):
        raise ApprovalError("bad_mode", f"No approval is needed in mode {mode!r}.")
    if mode != Mode.SELF and not approver_role:
        raise ApprovalError("bad_policy", "Approval by others needs an approver role.")
    digest = args_hash(arguments)
    required = max(2, required_count) if mode == Mode.OTHERS_N else 1
    if kind == ApprovalRequest.Kind.TOOL_CALL:
        existing = (
            ApprovalRequest.objects.pending()
            .select_for_update(of=("self",))
            .filter(kind=kind, caller=caller, application=application, tool_name=tool_name, args_hash=digest)
            .order_by("-created_at")
            .first()
        )
        if existing is not None:
            return existing
    now = timezone.now()
    request = ApprovalRequest.objects.create(
        kind=kind,
        caller=caller,
        application=application,
        tool_name=tool_name,
        args_hash=digest,
        display_args=dict(display_args or {}),
        args_shown=args_shown,
        mode=mode,
        required_count=required,
        approver_role=approver_role if mode != Mode.SELF else "",
        expires_at=now + dt.timedelta(seconds=expires_in),
        window_seconds=window,
        binding_message=binding_message,
        scope=scope,
        client_id=client_id,
        extra=dict(extra or {}),
    )
    record(
        actor if actor is not None else caller,
        "approval.requested",
        target=request,
        data=_data(request, required=required, approver_role=request.approver_role, expires_at=str(request.expires_at)),
    )
    schema = connection.schema_name
    transaction.on_commit(lambda: _queue_notification(schema, str(request.id)))
    return request


def _queue_notification(schema: str, request_id: str) -> None:
    # By name: the task module imports this one. A broker that is down must not fail the call that asked: the
    # request is made (and audited); the page and the dashboard count still show it.
    try:
        current_app.send_task("approvals.tasks.notify_request", args=[schema, request_id])
    except Exception as exc:  # noqa: BLE001
        logger.warning("Could not queue the notification of approval %s (%s)", request_id, type(exc).__name__)


@service
def request_for_policy(
    *, policy: ToolPolicy, caller: User, arguments: Mapping[str, Any] | None, client_id: str = "", actor: Any = None
) -> ApprovalRequest:
    """`request_approval` for a call of `policy`'s tool, with the policy's mode, role, N, expiry and window."""
    shown, is_shown = display_arguments(policy, arguments)
    return request_approval.nested(
        caller=caller,
        mode=policy.approval,
        application=policy.application,
        tool_name=policy.tool_name,
        arguments=arguments,
        display_args=shown,
        args_shown=is_shown,
        required_count=policy.required_approvals,
        approver_role=policy.approval_role,
        expires_in=policy.approval_expiry,
        window=policy.approval_window,
        client_id=client_id,
        actor=actor,
    )


def _check_decider(request: ApprovalRequest, approver: Any) -> None:
    if not getattr(approver, "is_authenticated", False) or not approver.is_active:
        raise ApprovalError("not_approver", "Sign in as an active user to answer approval requests.")
    if request.is_expired:
        raise ApprovalError("expired", "This request has expired.")
    if request.status != Status.PENDING:
        raise ApprovalError("not_pending", f"This request is already {request.get_status_display().lower()}.")
    if request.mode == Mode.SELF:
        if approver.pk != request.caller_id:
            raise ApprovalError("self_only", "Only the caller confirms this request.")
    else:
        if approver.pk == request.caller_id:
            raise ApprovalError("own_request", "You cannot approve your own request: someone else must.")
        if not holds_role(approver, request.approver_role):
            raise ApprovalError("not_approver", f"Approving needs the role {request.approver_role}.")
    if request.decisions.filter(approver=approver).exists():
        raise ApprovalError("already_decided", "You have already answered this request.")


@service
def decide(request: ApprovalRequest, approver: User, approve: bool) -> ApprovalRequest:
    """Record `approver`'s answer (see the module's contract); returns the request as it now stands."""
    request = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("caller", "application")
        .get(pk=request.pk)
    )
    _check_decider(request, approver)
    ApprovalDecision.objects.create(request=request, approver=approver, approve=approve)
    now = timezone.now()
    if not approve:
        request.status, request.decided_at = Status.DENIED, now
        request.save(update_fields=["status", "decided_at"])
        record(approver, "approval.denied", target=request, data=_data(request, approver=approver.email))
        return request
    count = request.decisions.filter(approve=True).count()
    approvers = list(request.decisions.filter(approve=True).values_list("approver__email", flat=True))
    if count < request.required_count:
        record(
            approver,
            "approval.approval_recorded",
            target=request,
            data=_data(request, approver=approver.email, approvals=count, required=request.required_count),
        )
        return request
    request.status, request.decided_at = Status.APPROVED, now
    if request.window_seconds:
        request.covers_until = now + dt.timedelta(seconds=request.window_seconds)
    request.save(update_fields=["status", "decided_at", "covers_until"])
    record(
        approver,
        "approval.approved",
        target=request,
        data=_data(
            request, approvers=approvers, covers_until=str(request.covers_until) if request.covers_until else None
        ),
    )
    return request


@service
def consume(
    *,
    caller: User,
    application: Application | None = None,
    tool_name: str | None = None,
    args_hash: str | None = None,
    request_id: uuid.UUID | str | None = None,
    used_by: str = "",
    actor: Any = None,
) -> ApprovalRequest | None:
    """Use an approval for one call (see the module's contract); `used_by` names the call (a request id)."""
    rows = ApprovalRequest.objects.select_for_update(of=("self",)).filter(caller=caller)
    if request_id is not None:
        try:
            rows = rows.filter(pk=uuid.UUID(str(request_id)))
        except ValueError:
            return None
    elif application is None or tool_name is None or args_hash is None:
        raise ApprovalError("bad_use", "Give the request id, or the application, tool and arguments hash.")
    if application is not None:
        rows = rows.filter(application=application)
    if tool_name is not None:
        rows = rows.filter(tool_name=tool_name)
    if args_hash is not None:
        rows = rows.filter(args_hash=args_hash)
    now = timezone.now()
    request = (
        rows.filter(Q(status=Status.APPROVED) | Q(status=Status.USED, covers_until__gt=now))
        .select_related("caller", "application")
        .order_by("-decided_at")
        .first()
    )
    if request is None:
        return None
    reused = request.status == Status.USED
    request.status = Status.USED
    request.used_at = now
    request.use_count += 1
    request.save(update_fields=["status", "used_at", "use_count"])
    record(
        actor if actor is not None else caller,
        "approval.used",
        target=request,
        data=_data(request, used_by=used_by, use_count=request.use_count, within_window=reused),
    )
    return request


@service
def expire_due(*, actor: Any = SYSTEM) -> int:
    """Mark every pending request past its expiry expired, one event each; returns how many (0 on a rerun)."""
    count = 0
    for request in (
        ApprovalRequest.objects.due()
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("caller", "application")
    ):
        request.status = Status.EXPIRED
        request.save(update_fields=["status"])
        record(actor, "approval.expired", target=request, data=_data(request, expires_at=str(request.expires_at)))
        count += 1
    return count


@service
def mark_notified(*, request_id: uuid.UUID | str, channels: Mapping[str, Any]) -> None:
    """Record that approvers of the request were told (`channels`: per channel, who or what and how it went)."""
    request = ApprovalRequest.objects.select_related("caller", "application").filter(pk=request_id).first()
    if request is None:
        return
    request.notified_at = timezone.now()
    request.save(update_fields=["notified_at"])
    record(SYSTEM, "approval.notified", target=request, data=_data(request, channels=dict(channels)))


# --- Settings -------------------------------------------------------------------------------------------------------


MIN_WEBHOOK_SECRET = 32


@service
def save_settings(
    settings: ApprovalSettings, *, actor: Any, m2m: Any = None, webhook_secret: str = ""
) -> ApprovalSettings:
    """The tenant's notification settings (email on or off, webhook URL) and, when given, a new webhook secret,
    written to Vault (never to Postgres, never to the audit log: the event carries only the Vault version)."""
    settings.pk = 1
    secret_version = None
    if webhook_secret:
        if len(webhook_secret) < MIN_WEBHOOK_SECRET:
            raise ValidationError(f"The webhook secret must be at least {MIN_WEBHOOK_SECRET} characters.")
        schema = connection.schema_name
        path = settings.webhook_secret_path or vault.tenant_path(schema, "approvals", "webhook")
        settings.webhook_secret_version = vault.tenant_kv_write(schema, path, {"secret": webhook_secret})
        settings.webhook_secret_path = path
        secret_version = settings.webhook_secret_version
    return writes.save(
        actor,
        settings,
        m2m=m2m,
        created="approval.settings_changed",
        changed="approval.settings_changed",
        data={"webhook_secret_version": secret_version} if secret_version else None,
    )


def webhook_secret() -> str:
    """The webhook's HMAC secret from Vault ('' when none was made)."""
    settings = ApprovalSettings.current()
    if not settings.webhook_secret_path:
        return ""
    data, _ = vault.tenant_kv_read(connection.schema_name, settings.webhook_secret_path)
    return str(data.get("secret", ""))
