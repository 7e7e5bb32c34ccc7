"""Invalidate cached grants after any change that can alter them, whichever path made it
(admin, REST API, services, shell). The bump runs after commit, for the schema the change was made in."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django_tenants.utils import schema_context

from rbac import models as m
from rbac.grants import bump_version

_GRANT_MODELS = (m.Role, m.Group, m.GroupMembership, m.RoleBinding, m.Scope, m.Resource, m.Permission)


def _schedule_bump(**kwargs: Any) -> None:
    schema = connection.schema_name

    def bump() -> None:
        with schema_context(schema):
            bump_version()

    transaction.on_commit(bump)


def _on_m2m(sender: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _schedule_bump()


def _on_user_saved(sender: Any, update_fields: Any = None, **kwargs: Any) -> None:
    # Logins only touch last_login: no reason to invalidate for them.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    _schedule_bump()


def connect() -> None:
    for model in _GRANT_MODELS:
        post_save.connect(_schedule_bump, sender=model, dispatch_uid=f"rbac_bump_save_{model.__name__}")
        post_delete.connect(_schedule_bump, sender=model, dispatch_uid=f"rbac_bump_delete_{model.__name__}")
    for through in (m.Role.scopes.through, m.Role.resources.through, m.Role.permissions.through):
        m2m_changed.connect(_on_m2m, sender=through, dispatch_uid=f"rbac_bump_m2m_{through.__name__}")
    post_save.connect(_on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="rbac_bump_user_save")
    post_delete.connect(_schedule_bump, sender=settings.AUTH_USER_MODEL, dispatch_uid="rbac_bump_user_delete")
