"""Permissions from dashboard roles (accounts.roles), next to Django's ModelBackend (which still signs users in
and grants superusers everything). This backend signs no one in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend

from accounts.roles import role_permissions

_CACHE = "_dashboard_role_perm_cache"


class DashboardRoleBackend(BaseBackend):
    """An active user holds the permissions of the roles in `dashboard_roles` (model-wide only, like ModelBackend)."""

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, _CACHE):
            setattr(user_obj, _CACHE, role_permissions(list(getattr(user_obj, "dashboard_roles", None) or ())))
        return getattr(user_obj, _CACHE)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        prefix = f"{app_label}."
        return user_obj.is_active and any(perm.startswith(prefix) for perm in self.get_all_permissions(user_obj))
