"""Serializers of the RBAC objects. Everything is named as tokens and policies name it (exact, case-sensitive).

Names that tool policies refer to cannot be renamed through the API: a policy keeps names as strings, so a
rename would silently cut access and, worse, hand it to whatever is created later under the old name.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import User
from api.fields import PermissionNameField, name_field, user_field
from rbac.engine import KINDS
from rbac.grants import known_names
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


def policies_naming(kind: str, names: list[str]) -> list[str]:
    """Labels (``app/tool``) of the tool policies whose `kind` list names any of `names`."""
    policies = ToolPolicy.objects.filter(**{f"{kind}__overlap": names}).select_related("application")
    return [str(policy) for policy in policies]


def refuse_if_named_by_policies(kind: str, old_names: list[str], what: str) -> None:
    used_by = policies_naming(kind, old_names)
    if used_by:
        shown = ", ".join(used_by[:10]) + (" …" if len(used_by) > 10 else "")
        raise serializers.ValidationError(
            f"{what} is named by the tool policies {shown}; change those policies before renaming it."
        )


class ApplicationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["id", "slug", "name", "description", "is_active", "sdk_client_id", "created_at", "updated_at"]
        read_only_fields = ["sdk_client_id", "created_at", "updated_at"]


class _NamedSerializer(serializers.ModelSerializer):
    """A scope, resource, role or group: unique name, description. Renames are refused while policies use it."""

    policy_kind: str = ""

    def validate_name(self, value: str) -> str:
        instance = self.instance
        if instance is not None and value != instance.name:
            what = f"{self.policy_kind[:-1].capitalize()} '{instance.name}'"
            refuse_if_named_by_policies(self.policy_kind, [instance.name], what)
        return value


class ScopeSerializer(_NamedSerializer):
    policy_kind = "scopes"

    class Meta:
        model = Scope
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class ResourceSerializer(_NamedSerializer):
    policy_kind = "resources"

    class Meta:
        model = Resource
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        value = super().validate_name(value)
        instance = self.instance
        if instance is not None and value != instance.name:
            # Its permissions are named after it, too.
            names = [p.name for p in instance.permissions.select_related("resource")]
            if names:
                refuse_if_named_by_policies("permissions", names, f"Resource '{instance.name}'")
        return value


class PermissionSerializer(serializers.ModelSerializer):
    resource = name_field(Resource.objects.all(), "resource")
    name = serializers.CharField(read_only=True, help_text="resource:action")

    class Meta:
        model = Permission
        fields = ["id", "name", "resource", "action", "description", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []  # uniqueness is checked in validate() with a clearer message

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance
        resource = attrs.get("resource", instance.resource if instance else None)
        action = attrs.get("action", instance.action if instance else None)
        duplicates = Permission.objects.filter(resource=resource, action=action)
        if instance is not None:
            duplicates = duplicates.exclude(pk=instance.pk)
        if duplicates.exists():
            raise serializers.ValidationError({"action": [f"Permission '{resource}:{action}' already exists."]})
        if instance is not None and (resource, action) != (instance.resource, instance.action):
            refuse_if_named_by_policies("permissions", [instance.name], f"Permission '{instance.name}'")
        return attrs


class RoleSerializer(_NamedSerializer):
    policy_kind = "roles"
    scopes = name_field(Scope.objects.all(), "scope", many=True, required=False)
    resources = name_field(Resource.objects.all(), "resource", many=True, required=False)
    permissions = PermissionNameField(many=True, required=False)

    class Meta:
        model = Role
        fields = ["id", "name", "description", "scopes", "resources", "permissions", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class GroupSerializer(_NamedSerializer):
    policy_kind = "groups"
    members = serializers.SlugRelatedField(
        slug_field="email", many=True, read_only=True, help_text="Emails of the members (see group-memberships)."
    )

    class Meta:
        model = Group
        fields = ["id", "name", "description", "members", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class ToolPolicySerializer(serializers.ModelSerializer):
    """Who may see and call one tool. Every listed name must exist in this tenant (exact, case-sensitive)."""

    application = name_field(Application.objects.all(), "application", slug_field="slug")
    roles = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    groups = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    scopes = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    resources = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    permissions = serializers.ListField(
        child=serializers.CharField(max_length=160), required=False, help_text="resource:action names"
    )

    class Meta:
        model = ToolPolicy
        fields = [
            "id",
            "application",
            "tool_name",
            "description",
            *KINDS,
            "require_all",
            "is_enabled",
            "log_arguments",
            "approval",
            "approval_role",
            "approval_count",
            "approval_expiry",
            "approval_window",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []  # uniqueness is checked in validate() with a clearer message

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        given = [kind for kind in KINDS if kind in attrs]
        if given:
            existing = known_names()
            for kind in given:
                names = sorted(set(attrs[kind]))
                unknown = [name for name in names if name not in existing[kind]]
                if unknown:
                    errors[kind] = [f"Unknown {kind[:-1]} '{name}'." for name in unknown]
                attrs[kind] = names
        instance = self.instance
        application = attrs.get("application", instance.application if instance else None)
        tool_name = attrs.get("tool_name", instance.tool_name if instance else None)
        duplicates = ToolPolicy.objects.filter(application=application, tool_name=tool_name)
        if instance is not None:
            duplicates = duplicates.exclude(pk=instance.pk)
        if duplicates.exists():
            errors["tool_name"] = [f"Application '{application}' already has a policy for tool '{tool_name}'."]
        errors.update(self._approval_errors(attrs, instance))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    @staticmethod
    def _approval_errors(attrs: dict[str, Any], instance: ToolPolicy | None) -> dict[str, list[str]]:
        """The model's approval rules (`ToolPolicy.clean`) and, for a newly named approver role, that it exists."""
        probe = ToolPolicy()
        for field in ("approval", "approval_role", "approval_count"):
            if field in attrs:
                setattr(probe, field, attrs[field])
            elif instance is not None:
                setattr(probe, field, getattr(instance, field))
        errors: dict[str, list[str]] = {}
        try:
            ToolPolicy.clean(probe)
        except DjangoValidationError as exc:
            errors.update({field: list(messages) for field, messages in exc.message_dict.items()})
        role = attrs.get("approval_role")
        if role and (instance is None or role != instance.approval_role) and role not in known_names()["roles"]:
            errors["approval_role"] = [f"Unknown role '{role}'."]
        return errors


class RoleBindingSerializer(serializers.ModelSerializer):
    """A role given to exactly one user (by id) or one group (by name). Bindings are created and deleted,
    never changed: to move a role, delete the binding and create another."""

    role = name_field(Role.objects.all(), "role")
    user = user_field(required=False, allow_null=True)
    user_email = serializers.EmailField(source="user.email", read_only=True, default=None)
    group = name_field(Group.objects.all(), "group", required=False, allow_null=True)

    class Meta:
        model = RoleBinding
        fields = ["id", "role", "user", "user_email", "group", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user, group = attrs.get("user"), attrs.get("group")
        if (user is None) == (group is None):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give either a user or a group for this role binding, not both."]}
            )
        holder = {"user": user} if user is not None else {"group": group}
        if RoleBinding.objects.filter(role=attrs["role"], **holder).exists():
            who = f"user {user}" if user is not None else f"group '{group}'"
            raise serializers.ValidationError({"role": [f"Role '{attrs['role']}' is already bound to {who}."]})
        return attrs


class GroupMembershipSerializer(serializers.ModelSerializer):
    """A user (by id) in a group (by name). Created and deleted, never changed."""

    group = name_field(Group.objects.all(), "group")
    user = user_field()
    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = GroupMembership
        fields = ["id", "group", "user", "user_email", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if GroupMembership.objects.filter(group=attrs["group"], user=attrs["user"]).exists():
            raise serializers.ValidationError(
                {"user": [f"{attrs['user']} is already a member of group '{attrs['group']}'."]}
            )
        return attrs


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "is_active"]
        read_only_fields = fields
