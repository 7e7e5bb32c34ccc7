"""Who gains and who loses which tools when RBAC data changes: a diff of effective permissions.

A snapshot is, for each of a set of users, the tools (of every application) the one decision engine allows
them — `rbac.matrix.decide_rows`, which reads the users' grants in one query (`load_grants_many`) and calls
`rbac.engine.decide` per tool. Two snapshots of the same users, taken before and after a change in one
transaction, compare into an `AccessDiff`.

Two uses:

- the dashboard's change preview (`rbac.admin`): the submitted change is written in a transaction that is
  rolled back, and the diff of its affected users is shown before anything is saved;
- the audit event of a saved change: inside `recording()` (the dashboard turns it on), the RBAC service
  functions (`rbac.services`) put the diff their write caused into their event's data as ``access_changes``,
  computed in the write's own transaction, so it is exact.

Only affected users are decided: the holders of a role, the members of a group, a binding's user; a tool
policy's change is decided for every user, for that one tool. At most `MAX_USERS` users (in id order) are
decided; beyond that the diff says so (``users_affected`` > ``users_checked``, ``complete`` false).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import transaction

from accounts.models import User
from rbac.matrix import decide_rows
from rbac.models import GroupMembership, RoleBinding, ToolPolicy

MAX_USERS = 5000  # users decided per diff (a tool policy change is decided for every user of the tenant)

Tool = tuple[str, str]  # (application slug, tool name)
Users = Collection[int] | None  # user ids; None: every user of the tenant


@dataclass(frozen=True)
class UserChange:
    user_id: int
    email: str
    gains: tuple[Tool, ...]
    loses: tuple[Tool, ...]


@dataclass(frozen=True)
class AccessDiff:
    """Per user, the tools they gain and lose (only users whose access changes)."""

    changes: tuple[UserChange, ...]
    users_checked: int
    users_affected: int

    SHOWN: ClassVar[int] = 200  # users a page lists; the rest are counted

    @property
    def complete(self) -> bool:
        return self.users_checked >= self.users_affected

    @property
    def shown(self) -> tuple[UserChange, ...]:
        return self.changes[: self.SHOWN]

    @property
    def not_shown(self) -> int:
        return max(0, len(self.changes) - self.SHOWN)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def as_data(self) -> dict[str, Any]:
        """The audit event's ``access_changes``: tools named ``<application>/<tool>``."""
        return {
            "users": [
                {
                    "user": change.email,
                    "user_id": change.user_id,
                    "gains": [f"{app}/{tool}" for app, tool in change.gains],
                    "loses": [f"{app}/{tool}" for app, tool in change.loses],
                }
                for change in self.changes
            ],
            "users_checked": self.users_checked,
            "users_affected": self.users_affected,
            "complete": self.complete,
        }


@dataclass(frozen=True)
class Snapshot:
    allowed: dict[int, tuple[str, frozenset[Tool]]]  # user id → (email, tools allowed)
    affected: int


def _people(users: Users) -> tuple[list[User], int]:
    people = User.objects.only("pk", "email", "is_active").order_by("pk")
    if users is not None:
        people = people.filter(pk__in=list(users))
    total = people.count()
    return list(people[:MAX_USERS]), total


def _policies() -> list[ToolPolicy]:
    return list(ToolPolicy.objects.select_related("application").order_by("application__slug", "tool_name"))


def snapshot(users: Users) -> Snapshot:
    """What every one of `users` is allowed now (every application's tools), from the one engine."""
    people, total = _people(users)
    policies = _policies()
    tools = [(policy.application.slug, policy.tool_name) for policy in policies]
    allowed = {
        row.user_id: (row.email, frozenset(tool for tool, cell in zip(tools, row.cells, strict=True) if cell.allowed))
        for row in decide_rows(people, policies)
    }
    return Snapshot(allowed, total)


def compare(before: Snapshot, after: Snapshot) -> AccessDiff:
    found: list[UserChange] = []
    nothing: tuple[str, frozenset[Tool]] = ("", frozenset())
    for user_id in sorted(before.allowed.keys() | after.allowed.keys()):
        email_before, was = before.allowed.get(user_id, nothing)
        email_after, now = after.allowed.get(user_id, nothing)
        if was != now:
            found.append(
                UserChange(user_id, email_after or email_before, tuple(sorted(now - was)), tuple(sorted(was - now)))
            )
    found.sort(key=lambda change: (change.email, change.user_id))
    return AccessDiff(
        tuple(found),
        max(len(before.allowed), len(after.allowed)),
        max(before.affected, after.affected),
    )


def union(*sets: Users) -> Users:
    """The users of several sets; None (everyone) if any is."""
    result: set[int] = set()
    for users in sets:
        if users is None:
            return None
        result |= set(users)
    return result


# --- Affected users ------------------------------------------------------------------------------------------------


def members_of_groups(group_ids: Collection[int]) -> set[int]:
    return set(GroupMembership.objects.filter(group_id__in=list(group_ids)).values_list("user_id", flat=True))


def holders_of_roles(role_ids: Collection[int]) -> set[int]:
    """Users holding any of the roles, directly or through a group."""
    bindings = RoleBinding.objects.filter(role_id__in=list(role_ids))
    direct = set(bindings.filter(user__isnull=False).values_list("user_id", flat=True))
    groups = set(bindings.filter(group__isnull=False).values_list("group_id", flat=True))
    return direct | members_of_groups(groups)


def holders_of_binding(binding: RoleBinding) -> set[int]:
    if binding.user_id is not None:
        return {binding.user_id}
    return members_of_groups([binding.group_id]) if binding.group_id is not None else set()


# --- Recording the diff in a write's audit event -------------------------------------------------------------------

_recording: ContextVar[bool] = ContextVar("rbac_access_diff_recording", default=False)


@contextmanager
def recording() -> Iterator[None]:
    """Within this block, RBAC service functions record ``access_changes`` in their audit events."""
    token = _recording.set(True)
    try:
        yield
    finally:
        _recording.reset(token)


def is_recording() -> bool:
    return _recording.get()


class Tracker:
    """The snapshot of `users` before a write; `data()` after it gives the event's ``access_changes``. Outside
    `recording()` it does nothing (`users` is not even called)."""

    def __init__(self, users: Callable[[], Users]) -> None:
        self.users: Users = set()
        self.before: Snapshot | None = None
        if is_recording():
            self.users = users()
            self.before = snapshot(self.users)

    def diff(self) -> AccessDiff | None:
        if self.before is None:
            return None
        return compare(self.before, snapshot(self.users))

    def data(self) -> dict[str, Any]:
        diff = self.diff()
        return {} if diff is None else {"access_changes": diff.as_data()}

    def data_if(self, change: Callable[[], Any]) -> dict[str, Any]:
        """The event data of `change` without keeping it: for events written before their row is deleted. The
        change runs in a savepoint that is rolled back (its on-commit callbacks are dropped with it)."""
        if self.before is None:
            return {}
        with transaction.atomic():
            change()
            data = self.data()
            transaction.set_rollback(True)
        return data


def policy_data(old: ToolPolicy | None, new: ToolPolicy | None) -> dict[str, Any]:
    """``access_changes`` of a tool policy written (`old` → `new`; None: no policy, denied to everyone), decided for
    every user for that tool; empty when not recording."""
    if not is_recording():
        return {}
    people, total = _people(None)
    labelled = [(label, policy) for label, policy in (("old", old), ("new", new)) if policy is not None]
    rows = [policy for _label, policy in labelled]
    before: dict[int, tuple[str, frozenset[Tool]]] = {}
    after: dict[int, tuple[str, frozenset[Tool]]] = {}
    for row in decide_rows(people, rows):
        allowed = {
            label: frozenset([(policy.application.slug, policy.tool_name)]) if cell.allowed else frozenset()
            for (label, policy), cell in zip(labelled, row.cells, strict=True)
        }
        before[row.user_id] = (row.email, allowed.get("old", frozenset()))
        after[row.user_id] = (row.email, allowed.get("new", frozenset()))
    return {"access_changes": compare(Snapshot(before, total), Snapshot(after, total)).as_data()}
