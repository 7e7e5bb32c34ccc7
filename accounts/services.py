"""Writes on tenant users that end their access: deactivation and deletion (audited, atomic).

Both revoke every token, grant and MCP login session of the user in the same transaction
(`accounts.signals.end_user_access`); saving or deleting a user any other way does the same, with the
system as the actor."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.signals import ACTOR_ATTRIBUTE


@transaction.atomic
def deactivate_user(*, actor: Any, user: User) -> User:
    """Set `user` inactive; their tokens and sessions stop working at once. A second call changes nothing."""
    if user.is_active:
        user.is_active = False
        setattr(user, ACTOR_ATTRIBUTE, actor)
        user.save(update_fields=["is_active"])
    return user


@transaction.atomic
def delete_user(*, actor: Any, user: User) -> None:
    """Delete `user` and everything they hold (tokens, grants, sessions), auditing who did it."""
    setattr(user, ACTOR_ATTRIBUTE, actor)
    user.delete()
