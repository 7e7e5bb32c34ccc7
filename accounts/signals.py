"""A user's access ends when the user is deactivated or deleted, whichever door did it (dashboard, service
function, shell). `user_access_ended` lets the higher layers (`oauth` tokens, `mcp_endpoint` login sessions)
revoke what they hold for the user in the same transaction; one audit event counts what went."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import Signal
from django_tenants.utils import get_public_schema_name

import audit

# Sent with `user` and `reason` ("deactivated" or "deleted"); each receiver revokes what it holds for the user
# and returns {kind: count}. Receivers run inside the transaction of the change.
user_access_ended = Signal()

# Sent by the login page (`accounts.views.LoginView`) with `request`; each receiver returns a dict added to the
# page's context: the higher layers' other ways to sign in (`oauth`: upstream identity providers' buttons).
login_page_context = Signal()

ACTOR_ATTRIBUTE = "_authsec_actor"  # set by `accounts.services` (and the dashboard) to name who did it
_WAS_ACTIVE = "_authsec_was_active"


def end_user_access(user: Any, *, reason: str, actor: Any = None) -> dict[str, int]:
    """Revoke every token, grant and login session of `user` and audit the counts (one event), atomically.

    The MCP endpoint's deny-list is fed after commit by the receivers' own on-commit hooks."""
    if connection.schema_name == get_public_schema_name():
        return {}  # platform admins hold no OAuth tokens or MCP sessions
    actor = actor if actor is not None else getattr(user, ACTOR_ATTRIBUTE, None)
    with transaction.atomic():
        counts: dict[str, int] = {}
        for _receiver, result in user_access_ended.send(sender=type(user), user=user, reason=reason):
            for kind, number in (result or {}).items():
                counts[kind] = counts.get(kind, 0) + int(number)
        audit.record(
            actor if actor is not None else "system",
            "accounts.user_access_revoked",
            target=user,
            data={"reason": reason, "user": user.email, **counts},
        )
    return counts


def _before_save(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    # One query, and only when an inactive user is saved: was the row active until now?
    if raw or instance.is_active or instance.pk is None:
        return
    setattr(instance, _WAS_ACTIVE, sender._default_manager.filter(pk=instance.pk, is_active=True).exists())


def _after_save(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.is_active:
        return
    if getattr(instance, _WAS_ACTIVE, False):
        setattr(instance, _WAS_ACTIVE, False)
        end_user_access(instance, reason="deactivated")


def _before_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    end_user_access(instance, reason="deleted")


def connect() -> None:
    from django.conf import settings

    pre_save.connect(_before_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts_user_pre_save")
    post_save.connect(_after_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts_user_deactivated")
    pre_delete.connect(_before_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts_user_deleted")
