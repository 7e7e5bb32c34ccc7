from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import User
from accounts.roles import ROLE_HELP, DashboardRole, apply_roles, roles_of
from accounts.signals import ACTOR_ATTRIBUTE
from audit.admin import AuditedAdminMixin
from authsec_site.admin_sites import platform_admin


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class TenantUserEditForm(UserEditForm):
    """A tenant user's page: staff rights are dashboard roles (accounts.roles), not Django groups or permissions.

    `may_change_roles` and `editor` are set by the admin per request: only a tenant admin may change roles, and
    no one may take Tenant admin away from themselves (the dashboard would lose its last way back)."""

    roles = forms.MultipleChoiceField(
        label="Dashboard roles",
        choices=[(role.value, f"{role.label}: {ROLE_HELP[role]}") for role in DashboardRole],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What this user may do in the dashboard. A role needs “Staff status” (dashboard access). "
        "RBAC roles and groups (for MCP tools and the API) are set below, not here.",
    )
    may_change_roles = False
    editor: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["roles"].initial = roles_of(self.instance)
        if not self.may_change_roles:
            self.fields["roles"].disabled = True
            self.fields["roles"].help_text = "Only a tenant admin can change dashboard roles."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        roles = data.get("roles") or []
        if roles and not data.get("is_staff"):
            self.add_error("roles", "A dashboard role needs “Staff status”: tick it too, or choose no role.")
        editor = self.editor
        if (
            editor is not None
            and editor.pk == self.instance.pk
            and self.instance.is_superuser
            and DashboardRole.TENANT_ADMIN not in roles
        ):
            self.add_error("roles", "You cannot take the Tenant admin role away from yourself.")
        return data

    def save(self, commit: bool = True) -> User:
        if self.may_change_roles:
            apply_roles(self.instance, self.cleaned_data.get("roles") or [])
        return super().save(commit=commit)


class PlatformUserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    """The platform's users (public schema): Django's superuser flag, groups and permissions."""

    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "is_superuser", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "full_name")
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "usable_password", "password1", "password2")}),
    )

    # A platform user cannot be deleted: the cascade reaches tables that exist only in tenant schemas (RBAC
    # bindings, tokens), and the query fails in the public schema. Deactivate them instead.
    is_deletable = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.is_deletable and super().has_delete_permission(request, obj)

    # Deactivating or deleting a user here revokes their tokens and sessions (accounts.signals); these name the
    # admin who did it in that audit event.
    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        setattr(obj, ACTOR_ATTRIBUTE, request.user)
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.delete_user(actor=request.user, user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.delete_user(actor=request.user, user=user)


@admin.register(User)
class UserAdmin(PlatformUserAdmin):
    """A tenant's users: staff rights are dashboard roles (Tenant admin, Auditor), chosen on the user's page; role
    changes are audited with the rest of the page (`admin.user.changed`: `is_superuser`, `dashboard_roles`)."""

    form = TenantUserEditForm
    is_deletable = True
    list_display = ("email", "full_name", "is_active", "is_staff", "dashboard_role_names", "last_login")
    list_filter = ("is_active", "is_staff")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "roles")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )

    @admin.display(description="Dashboard roles")
    def dashboard_role_names(self, obj: User) -> str:
        return ", ".join(DashboardRole(role).label for role in roles_of(obj)) or "—"

    def get_form(self, request: HttpRequest, obj: User | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if change:  # the add form has no roles: they are chosen on the user's page once the user exists
            form = type(form.__name__, (form,), {"may_change_roles": request.user.is_superuser, "editor": request.user})
        return form


# The tenant dashboard has no Django permission groups: dashboard roles replace them (accounts.roles).
admin.site.unregister(Group)


class PermissionGroupAdmin(AuditedAdminMixin, GroupAdmin):
    """Django's permission groups of the platform admin (public schema), audited like every admin change."""


def _register_platform_models() -> None:
    platform_admin.register(User, PlatformUserAdmin)
    platform_admin.register(Group, PermissionGroupAdmin)


_register_platform_models()
