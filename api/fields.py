"""Serializer fields that name RBAC objects the way tokens and policies do: by exact, case-sensitive name."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from rbac.models import Permission


def name_field(queryset: Any, noun: str, **kwargs: Any) -> serializers.SlugRelatedField:
    """A relation written and read by its name, answering "Unknown <noun> 'x'." for a name that does not exist."""
    return serializers.SlugRelatedField(
        slug_field=kwargs.pop("slug_field", "name"),
        queryset=queryset,
        error_messages={"does_not_exist": f"Unknown {noun} '{{value}}'."},
        **kwargs,
    )


def user_field(**kwargs: Any) -> serializers.PrimaryKeyRelatedField:
    """A user of this tenant, by id."""
    return serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(),
        error_messages={
            "does_not_exist": "Unknown user id {pk_value}.",
            "incorrect_type": "A user is given by its integer id, not {data_type}.",
        },
        **kwargs,
    )


@extend_schema_field({"type": "string", "example": "projects:read", "pattern": r"^[^:]+:[^:]+$"})
class PermissionNameField(serializers.RelatedField):
    """A permission written and read as ``resource:action``."""

    default_error_messages = {
        "does_not_exist": "Unknown permission '{value}'.",
        "invalid": "A permission is written 'resource:action', got '{value}'.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("queryset", Permission.objects.select_related("resource"))
        super().__init__(**kwargs)

    def to_representation(self, value: Permission) -> str:
        return value.name

    def to_internal_value(self, data: Any) -> Permission:
        if not isinstance(data, str) or data.count(":") != 1:
            self.fail("invalid", value=str(data)[:120])
        resource, action = data.split(":")
        try:
            return self.get_queryset().get(resource__name=resource, action=action)
        except Permission.DoesNotExist:
            self.fail("does_not_exist", value=data)
