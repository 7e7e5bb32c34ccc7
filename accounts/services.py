"""Writes on users (tenant users and the platform's) and on the platform's Django permission groups: the
service functions the dashboards and the code call (`audit.writes.service`: one durable transaction with its
one audit event; ``.nested`` inside a caller's).

Deactivating or deleting a user, whichever way, also revokes every token, grant and MCP login session of the
user in the same transaction (`accounts.signals.end_user_access`, event `accounts.user_access_revoked`); the
functions here name the actor in that event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import Group

from accounts.models import User
from accounts.roles import apply_roles, roles_of
from accounts.signals import ACTOR_ATTRIBUTE
from audit import writes
from audit.recorder import record
from audit.writes import service

M2M = Mapping[str, Iterable[Any]] | None


@service
def save_user(
    user: User,
    *,
    actor: Any,
    m2m: M2M = None,
    roles: list[str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> User:
    """Create or change a user (its many-to-many `m2m`: the platform's groups and permissions). `roles`, when
    given, are the user's dashboard roles (`accounts.roles`), written with the rest of the row: the event shows
    them before and after. Deactivating revokes the user's access (`accounts.user_access_revoked`)."""
    extra = dict(data or {})
    if roles is not None:
        stored = User.objects.filter(pk=user.pk).first() if user.pk is not None else None
        before = roles_of(stored) if stored is not None else []
        apply_roles(user, roles)
        if roles_of(user) != before:
            extra["roles"] = {"before": before, "after": roles_of(user)}
    setattr(user, ACTOR_ATTRIBUTE, actor)  # named in `accounts.user_access_revoked` if this deactivates
    return writes.save(
        actor, user, m2m=m2m, created="accounts.user_created", changed="accounts.user_changed", data=extra
    )


@service
def deactivate_user(*, actor: Any, user: User) -> User:
    """Set `user` inactive; their tokens and sessions stop working at once. A second call changes nothing."""
    if user.is_active:
        user.is_active = False
        save_user.nested(user, actor=actor)
    return user


@service
def delete_user(user: User, *, actor: Any) -> None:
    """Delete `user` and everything they hold (tokens, grants, sessions), auditing who did it."""
    setattr(user, ACTOR_ATTRIBUTE, actor)
    writes.delete(actor, user, event="accounts.user_deleted", data={"user": user.email})


@service
def set_user_password(user: User, *, actor: Any, password: str | None) -> User:
    """Set `user`'s password, or make it unusable (`None`: no password sign-in). The event says which, never
    the password."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    record(actor, "accounts.password_changed", target=user, data={"user": user.email, "usable": password is not None})
    return user


@service
def save_permission_group(group: Group, *, actor: Any, m2m: M2M = None) -> Group:
    """A Django permission group of the platform admin (public schema), with its permissions."""
    return writes.save(
        actor, group, m2m=m2m, created="accounts.permission_group_created", changed="accounts.permission_group_changed"
    )


@service
def delete_permission_group(group: Group, *, actor: Any) -> None:
    writes.delete(actor, group, event="accounts.permission_group_deleted")
