"""RBAC data of a tenant: applications, roles, groups, scopes, resources, permissions, bindings, tool policies.

Where grants come from: a user holds roles bound to them directly or to a group they belong to; a role
carries scopes, resources and permissions. Names are unique per tenant (each tenant has its own schema)
and matched exactly and case-sensitively by the decision engine (`rbac.engine`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
validate_name = RegexValidator(
    NAME_RE, "Use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit.", code="invalid_name"
)
ACTION_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$"
validate_action = RegexValidator(ACTION_RE, "Use letters, digits, '_', '.' or '-'.", code="invalid_action")
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
validate_tool_name = RegexValidator(
    TOOL_NAME_RE.pattern, "Tool names use letters, digits, '_', '.' or '-' (1-128 characters).", code="invalid_tool"
)
DEFAULT_APPROVAL_EXPIRY = 600  # seconds a pending approval request waits (issue 22: ten minutes)
MAX_APPROVERS = 20
APP_SLUG_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"
validate_app_slug = RegexValidator(
    APP_SLUG_RE, "Use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit.", code="invalid_slug"
)


class NamedModel(models.Model):
    """A named RBAC object; the name is what tokens, policies and the engine compare."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    """An MCP application, served at /t/<tenant>/mcp/<slug>; its tools are governed by its ToolPolicy rows."""

    class AuthMode(models.TextChoices):
        OAUTH_TOOLS = "oauth_tools", "Login tools (the seed's flow)"
        BEARER = "bearer", "Bearer token required (standard MCP authorization)"
        BOTH = "both", "Both: login tools, or a bearer token when presented"

    slug = models.CharField(max_length=64, unique=True, validators=[validate_app_slug])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    auth_mode = models.CharField(
        max_length=16,
        choices=AuthMode.choices,
        default=AuthMode.BOTH,
        help_text="How MCP clients authenticate at this application's endpoint.",
    )
    # The client id the published AuthSec SDK is configured with (`sdkmgr`): found through the public directory
    # `sdkmgr.SdkClient`, kept in step by `sdkmgr.signals` whenever an application is saved or deleted.
    sdk_client_id = models.UUIDField(
        "SDK client id",
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Give this to run_mcp_server_with_oauth(client_id=...) of the AuthSec SDK (see docs/sdk.md).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Scope(NamedModel):
    """An OAuth-style scope such as ``read`` or ``write``."""


class Resource(NamedModel):
    """A protected resource such as ``production`` or ``analytics``."""


class Permission(models.Model):
    """An action on a resource, named ``resource:action`` (e.g. ``projects:read``)."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="permissions")
    action = models.CharField(max_length=50, validators=[validate_action])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["resource__name", "action"]
        constraints = [models.UniqueConstraint(fields=["resource", "action"], name="rbac_permission_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"{self.resource.name}:{self.action}"


class Role(NamedModel):
    """A role; what it grants (scopes, resources, permissions) goes to everyone bound to it."""

    scopes = models.ManyToManyField(Scope, blank=True, related_name="roles")
    resources = models.ManyToManyField(Resource, blank=True, related_name="roles")
    permissions = models.ManyToManyField(Permission, blank=True, related_name="roles")


class Group(NamedModel):
    """A set of users; roles bound to the group are held by every member."""

    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="GroupMembership", blank=True, related_name="rbac_groups"
    )


class GroupMembership(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="group_memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group__name", "user__email"]
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="rbac_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"


class RoleBinding(models.Model):
    """A role given to exactly one user or one group."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="bindings")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role__name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True) | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="rbac_binding_one_holder",
                violation_error_message="A role binding is for exactly one user or one group.",
            ),
            models.UniqueConstraint(fields=["role", "user"], name="rbac_binding_user_unique"),
            models.UniqueConstraint(fields=["role", "group"], name="rbac_binding_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.role} → {self.user or f'group {self.group}'}"

    def clean(self) -> None:
        if (self.user_id is None) == (self.group_id is None):
            raise ValidationError("Choose either a user or a group for this role binding, not both.")


def _name_list() -> ArrayField:
    # 160: room for the longest permission name, "<resource (100)>:<action (50)>".
    return ArrayField(models.CharField(max_length=160), default=list, blank=True)


def requirement_of(row: Any) -> Any:
    """The engine's `Requirement` of a row carrying the RBAC lists, `require_all` and `is_enabled` (a tool
    policy, a service)."""
    from rbac.engine import Requirement

    return Requirement.of(
        roles=row.roles,
        groups=row.groups,
        scopes=row.scopes,
        resources=row.resources,
        permissions=row.permissions,
        require_all=row.require_all,
        enabled=row.is_enabled,
    )


class ToolPolicy(models.Model):
    """Who may see and call one tool of an application. A tool without an enabled policy is denied.

    Semantics (the seed's): only non-empty lists count; none → any authenticated user. With
    ``require_all`` off any match of any list grants access; with it on every non-empty list must match
    (one item each, except resources: every listed resource is required).
    """

    class Approval(models.TextChoices):
        NONE = "none", "None: calls run at once"
        SELF = "self", "Self: the caller confirms in the browser, after a fresh second factor"
        OTHERS = "others", "Others: one holder of the approver role, never the caller, approves"
        OTHERS_N = "others_n", "N others: N distinct holders of the approver role approve"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="tool_policies")
    tool_name = models.CharField(max_length=128, validators=[validate_tool_name])
    description = models.TextField(blank=True)
    roles = _name_list()
    groups = _name_list()
    scopes = _name_list()
    resources = _name_list()
    permissions = _name_list()
    require_all = models.BooleanField(default=False)
    is_enabled = models.BooleanField(default=True)
    log_arguments = models.BooleanField(
        default=False,
        help_text="Record each call's arguments in the audit log (values under secret-looking keys are redacted).",
    )
    # Human approval before a call runs (`approvals`, docs/approvals.md).
    approval = models.CharField(
        max_length=16,
        choices=Approval.choices,
        default=Approval.NONE,
        help_text="Whether a person must approve each call of this tool before it runs.",
    )
    approval_role = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_name],
        help_text="The RBAC role an approver must hold (approval by others).",
    )
    approval_count = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_APPROVERS)],
        help_text="How many distinct approvers must approve (N approvers; 2 or more).",
    )
    approval_expiry = models.PositiveIntegerField(
        "approval expiry (seconds)",
        default=DEFAULT_APPROVAL_EXPIRY,
        validators=[MinValueValidator(30), MaxValueValidator(7 * 24 * 3600)],
        help_text="A pending request expires after this many seconds (default 600: ten minutes).",
    )
    approval_window = models.PositiveIntegerField(
        "approval covers identical calls for (seconds)",
        default=0,
        validators=[MaxValueValidator(24 * 3600)],
        help_text="0: an approval is used once. Otherwise identical calls (same caller, tool and arguments) "
        "within this many seconds of the approval run without asking again.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application__slug", "tool_name"]
        verbose_name_plural = "tool policies"
        constraints = [models.UniqueConstraint(fields=["application", "tool_name"], name="rbac_toolpolicy_unique")]

    def __str__(self) -> str:
        return f"{self.application.slug}/{self.tool_name}"

    def requirement(self):  # type: ignore[no-untyped-def]
        return requirement_of(self)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.approval in (self.Approval.OTHERS, self.Approval.OTHERS_N) and not self.approval_role:
            errors["approval_role"] = "Name the RBAC role whose holders approve."
        if self.approval == self.Approval.OTHERS_N and (self.approval_count or 0) < 2:
            errors["approval_count"] = "N approvers means 2 or more."
        if errors:
            raise ValidationError(errors)

    @property
    def needs_approval(self) -> bool:
        return self.approval != self.Approval.NONE

    def approval_text(self) -> str:
        """The approval policy in words (the dashboard, the policy simulator, the API)."""
        if self.approval == self.Approval.NONE:
            return "none"
        if self.approval == self.Approval.SELF:
            who = "the caller confirms, with a fresh second factor"
        else:
            n = self.required_approvals
            who = f"{n} approval{'s' if n > 1 else ''} by role {self.approval_role}, never the caller"
        covers = f"; covers identical calls for {self.approval_window} s" if self.approval_window else "; single use"
        return f"{who}; expires after {self.approval_expiry} s{covers}"

    @property
    def required_approvals(self) -> int:
        """How many distinct approvals a call needs (1 unless N approvers)."""
        return self.approval_count if self.approval == self.Approval.OTHERS_N else 1


# --- Tool pinning (rbac.pins) ----------------------------------------------------------------------------------------


class ToolPinSettings(models.Model):
    """The tenant's tool-pinning mode (a single row, pk 1; no row reads as `hold`)."""

    class Mode(models.TextChoices):
        HOLD = "hold", "Hold: a changed tool is not served until an admin approves it"
        WARN = "warn", "Warn: serve a changed tool and flag it for review"
        OFF = "off", "Off: tool definitions are not checked"

    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.HOLD)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tool pinning setting"
        verbose_name_plural = "tool pinning settings"

    def __str__(self) -> str:
        return f"Tool pinning: {self.mode}"

    @classmethod
    def current_mode(cls) -> str:
        return cls.objects.filter(pk=1).values_list("mode", flat=True).first() or cls.Mode.HOLD


class ToolPinQuerySet(models.QuerySet["ToolPin"]):
    def in_state(self, state: str) -> ToolPinQuerySet:
        """The pins whose `ToolPin.state` is `state` (the same rules, in SQL)."""
        pinned = ~models.Q(pinned_hash="")
        changed = ~models.Q(seen_hash="") & ~models.Q(seen_hash=models.F("pinned_hash"))
        rejected = models.Q(seen_hash=models.F("rejected_hash"))
        conditions = {
            ToolPin.State.UNPINNED: models.Q(pinned_hash=""),
            ToolPin.State.PINNED: pinned & (models.Q(seen_hash="") | models.Q(seen_hash=models.F("pinned_hash"))),
            ToolPin.State.REJECTED: pinned & changed & rejected,
            ToolPin.State.DRIFTED: pinned & changed & ~rejected,
        }
        return self.filter(conditions[ToolPin.State(state)])


class ToolPin(models.Model):
    """The approved ("pinned") definition of one served tool and the last definition seen of it (`rbac.pins`).

    A pin belongs to a tool policy (tools of an application: hosted in code or declared by the SDK) or to a
    tool of a runtime-API resource server (`resource_server_id`: oauth sits above rbac, so no foreign key).
    Hashes are SHA-256 of `rbac.pin_definitions.canonical_json`; `warnings` are the poisoning scan of the seen
    definition. Only `rbac.pins` writes these rows."""

    class Source(models.TextChoices):
        HOSTED = "hosted", "Hosted tool (registered in code)"
        SDK = "sdk", "AuthSec SDK decorator server"
        MANIFEST = "manifest", "Runtime-API manifest"

    class State(models.TextChoices):
        UNPINNED = "unpinned", "Not pinned yet"
        PINNED = "pinned", "Pinned"
        DRIFTED = "drifted", "Changed, waits for review"
        REJECTED = "rejected", "Change rejected"

    policy = models.OneToOneField(ToolPolicy, null=True, blank=True, on_delete=models.CASCADE, related_name="pin")
    resource_server_id = models.UUIDField(null=True, blank=True, db_index=True)
    tool_name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices)
    pinned_hash = models.CharField(max_length=64, blank=True)
    pinned_definition = models.JSONField(null=True, blank=True)
    pinned_at = models.DateTimeField(null=True, blank=True)
    seen_hash = models.CharField(max_length=64, blank=True)
    seen_definition = models.JSONField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    rejected_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolPinQuerySet.as_manager()

    class Meta:
        ordering = ["tool_name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(policy__isnull=False, resource_server_id__isnull=True)
                | models.Q(policy__isnull=True, resource_server_id__isnull=False),
                name="rbac_toolpin_one_owner",
            ),
            models.UniqueConstraint(
                fields=["resource_server_id", "tool_name"],
                condition=models.Q(resource_server_id__isnull=False),
                name="rbac_toolpin_manifest_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner_label}/{self.tool_name}"

    @property
    def owner_label(self) -> str:
        if self.policy_id is not None:
            return self.policy.application.slug
        return f"resource server {self.resource_server_id}"

    @property
    def state(self) -> str:
        if not self.pinned_hash:
            return self.State.UNPINNED
        if self.seen_hash in ("", self.pinned_hash):
            return self.State.PINNED
        if self.seen_hash == self.rejected_hash:
            return self.State.REJECTED
        return self.State.DRIFTED

    def holds(self, mode: str, own_hash: str = "") -> bool:
        """Whether the tool is not served. Unreviewed drift holds it everywhere (in `hold` mode), neither the old
        nor the new definition; once reviewed, a definition (`own_hash`: this process's, else the last seen) is
        served only if it is the pinned one. A rejected definition is held in `warn` mode too."""
        if mode == ToolPinSettings.Mode.OFF or not self.pinned_hash:
            return False
        if self.state == self.State.DRIFTED:
            return mode == ToolPinSettings.Mode.HOLD
        current = own_hash or self.seen_hash
        if current and current != self.pinned_hash:
            return mode == ToolPinSettings.Mode.HOLD or current == self.rejected_hash
        return False

    def flagged(self, mode: str, own_hash: str = "") -> bool:
        """Served although it differs from the pin (`warn` mode): shown as flagged until reviewed."""
        if mode != ToolPinSettings.Mode.WARN or not self.pinned_hash or self.holds(mode, own_hash):
            return False
        current = own_hash or self.seen_hash
        return self.state == self.State.DRIFTED or bool(current and current != self.pinned_hash)
