"""Writes to RBAC data: each runs in a transaction and writes its audit event in it.

Cached grants are invalidated by `rbac.signals` after commit, whatever path the change took.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

import audit
from accounts.models import User
from audit.diff import snapshot
from rbac.engine import KINDS
from rbac.models import Application, Group, GroupMembership, Role, RoleBinding, ToolPolicy


def _holder(user: User | None, group: Group | None) -> dict[str, Any]:
    if (user is None) == (group is None):
        raise ValidationError("Give either a user or a group.")
    return {"user": user, "group": None} if user is not None else {"user": None, "group": group}


@transaction.atomic
def grant_role(*, actor: Any, role: Role, user: User | None = None, group: Group | None = None) -> RoleBinding:
    """Bind `role` to a user or a group; a second call changes nothing."""
    holder = _holder(user, group)
    binding, created = RoleBinding.objects.get_or_create(role=role, **holder)
    if created:
        audit.record(
            actor,
            "rbac.role_granted",
            target=binding,
            data={"role": role.name, "user": str(user) if user else None, "group": str(group) if group else None},
        )
    return binding


@transaction.atomic
def revoke_role(*, actor: Any, role: Role, user: User | None = None, group: Group | None = None) -> bool:
    holder = _holder(user, group)
    binding = RoleBinding.objects.filter(role=role, **holder).first()
    if binding is None:
        return False
    audit.record(
        actor,
        "rbac.role_revoked",
        target=binding,
        data={"role": role.name, "user": str(user) if user else None, "group": str(group) if group else None},
    )
    binding.delete()
    return True


@transaction.atomic
def add_member(*, actor: Any, group: Group, user: User) -> GroupMembership:
    membership, created = GroupMembership.objects.get_or_create(group=group, user=user)
    if created:
        audit.record(actor, "rbac.member_added", target=membership, data={"group": group.name, "user": user.email})
    return membership


@transaction.atomic
def remove_member(*, actor: Any, group: Group, user: User) -> bool:
    membership = GroupMembership.objects.filter(group=group, user=user).first()
    if membership is None:
        return False
    audit.record(actor, "rbac.member_removed", target=membership, data={"group": group.name, "user": user.email})
    membership.delete()
    return True


@transaction.atomic
def delete_role(*, actor: Any, role: Role) -> None:
    """Delete a role and, with it, every binding of it; the audit event lists what was removed."""
    bindings = [str(b.user or f"group {b.group}") for b in role.bindings.select_related("user", "group")]
    audit.record(actor, "rbac.role_deleted", target=role, data={"before": snapshot(role), "bindings_removed": bindings})
    role.delete()


@transaction.atomic
def upsert_tool_policy(*, actor: Any, application: Application, tool_name: str, **fields: Any) -> ToolPolicy:
    """Create or update the policy of one tool; the audit event carries before and after values."""
    allowed = set(KINDS) | {"require_all", "is_enabled", "description", "log_arguments"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown tool policy fields: {', '.join(sorted(unknown))}")
    policy = ToolPolicy.objects.select_for_update().filter(application=application, tool_name=tool_name).first()
    before = snapshot(policy) if policy else None
    if policy is None:
        policy = ToolPolicy(application=application, tool_name=tool_name)
    for key, value in fields.items():
        setattr(policy, key, sorted(set(value)) if key in KINDS else value)
    policy.full_clean()
    policy.save()
    audit.record(
        actor,
        "rbac.tool_policy_created" if before is None else "rbac.tool_policy_changed",
        target=policy,
        data={"before": before, "after": snapshot(policy)},
    )
    return policy
