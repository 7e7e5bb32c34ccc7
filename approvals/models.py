"""Approval requests: a person says yes (or no) before a sensitive tool call runs, or a CIBA client gets a token.

An `ApprovalRequest` is bound to its caller, application, tool and the SHA-256 of the canonical JSON of the call's
arguments: an approval covers exactly those arguments. Its policy (mode, approver role, N, expiry, covers window)
is copied from the tool's `rbac.ToolPolicy` when it is made, so a later policy change never alters a pending
request. Only `approvals.services` writes these rows.
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from rbac.models import Application, ToolPolicy


class ApprovalRequestQuerySet(models.QuerySet["ApprovalRequest"]):
    def pending(self) -> ApprovalRequestQuerySet:
        """Pending and not yet past their expiry (a request past it reads as expired before `expire_due` runs)."""
        return self.filter(status=ApprovalRequest.Status.PENDING, expires_at__gt=timezone.now())

    def due(self) -> ApprovalRequestQuerySet:
        """Still marked pending, but past their expiry: what `expire_due` expires."""
        return self.filter(status=ApprovalRequest.Status.PENDING, expires_at__lte=timezone.now())


class ApprovalRequest(models.Model):
    """One request for approval (a tool call or a CIBA authentication request) and its state.

    Status: pending → approved (enough approvals) | denied (one denial) | expired (nobody decided in time);
    approved → used (a call ran with it; reusable for identical calls until `covers_until`)."""

    class Kind(models.TextChoices):
        TOOL_CALL = "tool_call", "Tool call"
        CIBA = "ciba", "CIBA authentication request"

    Mode = ToolPolicy.Approval

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"
        USED = "used", "Used"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TOOL_CALL)
    caller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_requests")
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_requests"
    )
    client_id = models.CharField(max_length=200, blank=True, help_text="The OAuth or SDK client that asked.")
    tool_name = models.CharField(max_length=200, blank=True)
    args_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON of the arguments.")
    display_args = models.JSONField(
        default=dict, blank=True, help_text="The arguments as approvers see them, redacted by the tool's policy."
    )
    args_shown = models.BooleanField(default=False, help_text="False: the tool's policy keeps its arguments hidden.")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    required_count = models.PositiveSmallIntegerField(default=1)
    approver_role = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    binding_message = models.CharField(max_length=256, blank=True, help_text="CIBA: the text shown to the user.")
    scope = models.CharField(max_length=500, blank=True, help_text="CIBA: the scopes asked for.")
    extra = models.JSONField(default=dict, blank=True, help_text="Kind-specific details (never secrets).")
    window_seconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    covers_until = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)
    notified_at = models.DateTimeField(null=True, blank=True)

    objects = ApprovalRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["caller", "tool_name", "args_hash"], name="approvals_binding_idx")]

    def __str__(self) -> str:
        what = self.tool_name or self.binding_message or self.kind
        return f"{what} for {self.caller} ({self.effective_status})"

    @property
    def is_expired(self) -> bool:
        return self.status == self.Status.EXPIRED or (
            self.status == self.Status.PENDING and self.expires_at <= timezone.now()
        )

    @property
    def effective_status(self) -> str:
        """The status, with a pending request past its expiry read as expired."""
        return self.Status.EXPIRED if self.is_expired else self.status

    @property
    def display_json(self) -> str:
        """The shown arguments as indented JSON (the approval page)."""
        return json.dumps(self.display_args, indent=2, ensure_ascii=False, sort_keys=True, default=str)

    @property
    def approvals_count(self) -> int:
        return sum(1 for d in self.decisions.all() if d.approve)


class ApprovalDecision(models.Model):
    """One approver's answer to a request; an approver answers a request once."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval_decisions")
    approve = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="approvals_one_decision_each")]

    def __str__(self) -> str:
        return f"{self.approver} {'approved' if self.approve else 'denied'} {self.request_id}"


class ApprovalSettings(models.Model):
    """The tenant's approval notifications (a single row, pk 1): email on or off, and a signed webhook.

    The webhook's HMAC secret lives in Vault (`webhook_secret_path`); this row never holds it."""

    email_enabled = models.BooleanField(default=True, help_text="Email each approver of a new request.")
    webhook_url = models.URLField(blank=True, help_text="POST each new request here, signed (docs/approvals.md).")
    webhook_secret_path = models.CharField(max_length=300, blank=True, editable=False)
    webhook_secret_version = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "approval setting"
        verbose_name_plural = "approval settings"

    def __str__(self) -> str:
        return "Approval notifications"

    @classmethod
    def current(cls) -> ApprovalSettings:
        """The row of the current schema, or the defaults (unsaved) when none was made."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    @classmethod
    def load(cls) -> ApprovalSettings:
        """The row of the current schema, created with the defaults on first use (as `AuditSettings.load`)."""
        row, _ = cls.objects.get_or_create(pk=1)
        return row
