from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import User
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


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
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


admin.site.unregister(Group)


@admin.register(Group)
class PermissionGroupAdmin(AuditedAdminMixin, GroupAdmin):
    """Django's permission groups (dashboard access), audited like every admin change."""


def _register_platform_models() -> None:
    platform_admin.register(User, UserAdmin)
    platform_admin.register(Group, PermissionGroupAdmin)


_register_platform_models()
