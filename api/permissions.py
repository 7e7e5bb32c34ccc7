"""Who may use the management API: active staff of the tenant, and for each model its Django permission.

Reads need the model's ``view_`` permission too (DRF's default lets any authenticated user read).
Superusers hold every permission. The same rules apply to OAuth bearer tokens, which must also carry the
`admin` scope (a token stands for its user only as far as its scope allows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from oauth2_provider.models import AccessToken
from rest_framework.permissions import BasePermission, DjangoModelPermissions, IsAdminUser
from rest_framework.request import Request

from oauth.authentication import API_SCOPE, is_api_staff

_VIEW = ["%(app_label)s.view_%(model_name)s"]


class IsStaff(IsAdminUser):
    """DRF's IsAdminUser, also refusing inactive users and admitting superusers without the staff flag."""

    message = "The management API is for staff of this tenant."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, AccessToken) and not request.auth.allow_scopes([API_SCOPE]):
            self.message = f"Bearer tokens for the management API need the '{API_SCOPE}' scope."
            return False
        return is_api_staff(request.user)


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with ``view_`` required for GET, HEAD and OPTIONS."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": _VIEW,
        "HEAD": _VIEW,
        "OPTIONS": _VIEW,
    }


def view_permission(*model_classes: type[models.Model]) -> type[BasePermission]:
    """A permission class needing ``view_`` on each model, whatever the method (for read-only POST actions)."""
    perms = [f"{m._meta.app_label}.view_{m._meta.model_name}" for m in model_classes]

    class ViewPermission(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))

    ViewPermission.__name__ = "View" + "".join(m.__name__ for m in model_classes) + "Permission"
    return ViewPermission


def has_view_permission(user: Any, model_classes: Iterable[type[models.Model]]) -> bool:
    return bool(user.has_perms([f"{m._meta.app_label}.view_{m._meta.model_name}" for m in model_classes]))
