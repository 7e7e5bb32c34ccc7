"""Writes to RBAC data: the service functions that the dashboard, the management API and the code all call.

Each is an `audit.writes.service`: its own durable transaction with its one audit event (a service function
that is a step of another is called as ``.nested``). Cached grants are invalidated by `rbac.signals` after
commit, whatever path the change took. Inside `rbac.access_diff.recording()` (the dashboard's and the API's
writes), the events of writes that can change decisions also carry ``access_changes``: who gains and who loses
which tools, computed in the write's own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import User
from audit import writes
from audit.recorder import record
from audit.writes import service
from rbac import access_diff
from rbac.access_diff import Tracker
from rbac.engine import KINDS
from rbac.models import (
    Application,
    Group,
    GroupMembership,
    Permission,
    Resource,
    Role,
    RoleBinding,
    Scope,
    ToolPolicy,
)

M2M = Mapping[str, Iterable[Any]] | None
APPROVAL_FIELDS = ("approval", "approval_role", "approval_count", "approval_expiry", "approval_window")

# --- Role bindings and group memberships ---------------------------------------------------------------------


def _holder(user: User | None, group: Group | None) -> dict[str, Any]:
    if (user is None) == (group is None):
        raise ValidationError("Give either a user or a group.")
    return {"user": user, "group": None} if user is not None else {"user": None, "group": group}


def _holder_data(role: Role, user: User | None, group: Group | None) -> dict[str, Any]:
    return {"role": role.name, "user": str(user) if user else None, "group": str(group) if group else None}


def _holder_users(user: User | None, group: Group | None) -> set[int]:
    return {user.pk} if user is not None else access_diff.members_of_groups([group.pk] if group else [])


@service
def grant_role(*, actor: Any, role: Role, user: User | None = None, group: Group | None = None) -> RoleBinding:
    """Bind `role` to a user or a group; a second call changes nothing."""
    holder = _holder(user, group)
    tracker = Tracker(lambda: _holder_users(user, group))
    binding, created = RoleBinding.objects.get_or_create(role=role, **holder)
    if created:
        data = {**_holder_data(role, user, group), **tracker.data()}
        record(actor, "rbac.role_granted", target=binding, data=data)
    return binding


@service
def revoke_role(*, actor: Any, role: Role, user: User | None = None, group: Group | None = None) -> bool:
    holder = _holder(user, group)
    binding = RoleBinding.objects.filter(role=role, **holder).first()
    if binding is None:
        return False
    tracker = Tracker(lambda: _holder_users(user, group))
    access = tracker.data_if(RoleBinding.objects.filter(pk=binding.pk).delete)
    record(actor, "rbac.role_revoked", target=binding, data={**_holder_data(role, user, group), **access})
    binding.delete()
    return True


@service
def save_role_binding(binding: RoleBinding, *, actor: Any, m2m: M2M = None) -> RoleBinding:
    """A binding written as a row (a dashboard page or inline): a changed row is its old grant revoked and the
    new one granted."""
    old = RoleBinding.objects.select_related("role", "user", "group").filter(pk=binding.pk).first()
    if old is not None:
        if (old.role_id, old.user_id, old.group_id) == (binding.role_id, binding.user_id, binding.group_id):
            return old
        revoke_role.nested(actor=actor, role=old.role, user=old.user, group=old.group)
    return grant_role.nested(actor=actor, role=binding.role, user=binding.user, group=binding.group)


@service
def delete_role_binding(binding: RoleBinding, *, actor: Any) -> None:
    revoke_role.nested(actor=actor, role=binding.role, user=binding.user, group=binding.group)


@service
def add_member(*, actor: Any, group: Group, user: User) -> GroupMembership:
    tracker = Tracker(lambda: {user.pk})
    membership, created = GroupMembership.objects.get_or_create(group=group, user=user)
    if created:
        data = {"group": group.name, "user": user.email, **tracker.data()}
        record(actor, "rbac.member_added", target=membership, data=data)
    return membership


@service
def remove_member(*, actor: Any, group: Group, user: User) -> bool:
    membership = GroupMembership.objects.filter(group=group, user=user).first()
    if membership is None:
        return False
    access = Tracker(lambda: {user.pk}).data_if(GroupMembership.objects.filter(pk=membership.pk).delete)
    data = {"group": group.name, "user": user.email, **access}
    record(actor, "rbac.member_removed", target=membership, data=data)
    membership.delete()
    return True


@service
def save_group_membership(membership: GroupMembership, *, actor: Any, m2m: M2M = None) -> GroupMembership:
    """A membership written as a row: a changed row is the old membership removed and the new one added."""
    old = GroupMembership.objects.select_related("group", "user").filter(pk=membership.pk).first()
    if old is not None:
        if (old.group_id, old.user_id) == (membership.group_id, membership.user_id):
            return old
        remove_member.nested(actor=actor, group=old.group, user=old.user)
    return add_member.nested(actor=actor, group=membership.group, user=membership.user)


@service
def delete_group_membership(membership: GroupMembership, *, actor: Any) -> None:
    remove_member.nested(actor=actor, group=membership.group, user=membership.user)


# --- Named objects -------------------------------------------------------------------------------------------------


@service
def save_scope(scope: Scope, *, actor: Any, m2m: M2M = None) -> Scope:
    return writes.save(actor, scope, m2m=m2m, created="rbac.scope_created", changed="rbac.scope_changed")


@service
def delete_scope(scope: Scope, *, actor: Any) -> None:
    writes.delete(actor, scope, event="rbac.scope_deleted")


@service
def save_resource(resource: Resource, *, actor: Any, m2m: M2M = None) -> Resource:
    return writes.save(actor, resource, m2m=m2m, created="rbac.resource_created", changed="rbac.resource_changed")


@service
def delete_resource(resource: Resource, *, actor: Any) -> None:
    writes.delete(actor, resource, event="rbac.resource_deleted")


@service
def save_permission(permission: Permission, *, actor: Any, m2m: M2M = None) -> Permission:
    return writes.save(actor, permission, m2m=m2m, created="rbac.permission_created", changed="rbac.permission_changed")


@service
def delete_permission(permission: Permission, *, actor: Any) -> None:
    writes.delete(actor, permission, event="rbac.permission_deleted")


@service
def save_role(role: Role, *, actor: Any, m2m: M2M = None) -> Role:
    """A role and what it grants (`m2m`: scopes, resources, permissions)."""
    tracker = Tracker(lambda: access_diff.holders_of_roles([role.pk]) if role.pk else set())
    return writes.save(
        actor, role, m2m=m2m, created="rbac.role_created", changed="rbac.role_changed", data=tracker.data
    )


@service
def delete_role(role: Role, *, actor: Any) -> None:
    """Delete a role and, with it, every binding of it; the audit event lists what was removed."""
    bindings = [str(b.user or f"group {b.group}") for b in role.bindings.select_related("user", "group")]
    access = Tracker(lambda: access_diff.holders_of_roles([role.pk])).data_if(Role.objects.filter(pk=role.pk).delete)
    writes.delete(actor, role, event="rbac.role_deleted", data={"bindings_removed": bindings, **access})


@service
def save_group(group: Group, *, actor: Any, m2m: M2M = None) -> Group:
    """A group's own fields; members and roles are `add_member` and `grant_role` (a rename can change decisions:
    policies name groups)."""
    tracker = Tracker(lambda: access_diff.members_of_groups([group.pk]) if group.pk else set())
    return writes.save(
        actor, group, m2m=m2m, created="rbac.group_created", changed="rbac.group_changed", data=tracker.data
    )


@service
def delete_group(group: Group, *, actor: Any) -> None:
    """Delete a group with its memberships and role bindings; the audit event lists what was removed."""
    members = sorted(group.memberships.values_list("user__email", flat=True))
    roles = sorted(group.role_bindings.values_list("role__name", flat=True))
    tracker = Tracker(lambda: access_diff.members_of_groups([group.pk]))
    access = tracker.data_if(Group.objects.filter(pk=group.pk).delete)
    data = {"members_removed": members, "roles_removed": roles, **access}
    writes.delete(actor, group, event="rbac.group_deleted", data=data)


# --- Applications and tool policies --------------------------------------------------------------------------------


@service
def save_application(application: Application, *, actor: Any, m2m: M2M = None) -> Application:
    """An application's own fields (activation included); its tools are `save_tool_policy`."""
    return writes.save(
        actor, application, m2m=m2m, created="rbac.application_created", changed="rbac.application_changed"
    )


@service
def set_applications_active(applications: Iterable[Application], *, actor: Any, active: bool) -> int:
    """Activate or deactivate several applications at once (a dashboard bulk action); returns how many changed."""
    count = 0
    for application in applications:
        if application.is_active != active:
            application.is_active = active
            save_application.nested(application, actor=actor)
            count += 1
    return count


@service
def delete_application(application: Application, *, actor: Any) -> None:
    """Delete an application with its tool policies; the audit event lists the tools removed."""
    tools = sorted(application.tool_policies.values_list("tool_name", flat=True))
    writes.delete(actor, application, event="rbac.application_deleted", data={"tool_policies_removed": tools})


@service
def save_tool_policy(policy: ToolPolicy, *, actor: Any, m2m: M2M = None) -> ToolPolicy:
    """Create or change the policy of one tool; requirement lists are stored sorted and without repeats."""
    for kind in KINDS:
        setattr(policy, kind, sorted(set(getattr(policy, kind) or [])))
    old = None
    if access_diff.is_recording() and policy.pk is not None:
        old = ToolPolicy.objects.select_related("application").filter(pk=policy.pk).first()
    return writes.save(
        actor,
        policy,
        m2m=m2m,
        created="rbac.tool_policy_created",
        changed="rbac.tool_policy_changed",
        data=lambda: access_diff.policy_data(old, policy),
    )


@service
def upsert_tool_policy(*, actor: Any, application: Application, tool_name: str, **fields: Any) -> ToolPolicy:
    """Create or update the policy of `tool_name` from field values (validated here)."""
    allowed = set(KINDS) | {"require_all", "is_enabled", "description", "log_arguments"} | set(APPROVAL_FIELDS)
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown tool policy fields: {', '.join(sorted(unknown))}")
    policy = ToolPolicy.objects.select_for_update().filter(application=application, tool_name=tool_name).first()
    if policy is None:
        policy = ToolPolicy(application=application, tool_name=tool_name)
    for key, value in fields.items():
        setattr(policy, key, sorted(set(value)) if key in KINDS else value)
    policy.full_clean()
    return save_tool_policy.nested(policy, actor=actor)


@service
def set_tool_policies_enabled(policies: Iterable[ToolPolicy], *, actor: Any, enabled: bool) -> int:
    """Enable or disable several tool policies at once (a dashboard bulk action); returns how many changed."""
    count = 0
    for policy in policies:
        if policy.is_enabled != enabled:
            policy.is_enabled = enabled
            save_tool_policy.nested(policy, actor=actor)
            count += 1
    return count


@service
def delete_tool_policy(policy: ToolPolicy, *, actor: Any) -> None:
    """Delete a tool's policy: the tool is then denied to everyone."""
    writes.delete(actor, policy, event="rbac.tool_policy_deleted", data=access_diff.policy_data(policy, None))
