"""The users of a tenant's dashboard and of the platform admin, and the platform admin's Django permission groups.
Every write (add, change, password, delete) goes through `accounts.services`."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts import mfa, services
from accounts.models import MfaSettings, User
from accounts.roles import ROLE_HELP, DashboardRole, roles_of
from audit.admin import ServiceAdminMixin
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


class PasswordChangeForm(AdminPasswordChangeForm):
    """The user admin's password page; saving it is `accounts.services.set_user_password` by `actor`."""

    actor: Any = None

    def save(self, commit: bool = True) -> User:
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        return services.set_user_password(self.user, actor=self.actor, password=password)


class PlatformUserAdmin(ServiceAdminMixin, DjangoUserAdmin):
    """The platform's users (public schema): Django's superuser flag, groups and permissions."""

    save_service = staticmethod(services.save_user)
    delete_service = staticmethod(services.delete_user)
    form = UserEditForm
    add_form = UserCreationForm
    change_password_form = PasswordChangeForm
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

    @method_decorator(sensitive_post_parameters())
    @method_decorator(csrf_protect)
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        # Django's user admin wraps this view in a transaction of its own; here the service call is the transaction.
        return self._add_view(request, form_url, extra_context)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django's view saves the form it makes from `change_password_form`: give it one that knows who is asking
        # (on a copy of this admin, which every request shares).
        admin_for_request = copy.copy(self)
        admin_for_request.change_password_form = type(
            "PasswordChangeForm", (self.change_password_form,), {"actor": request.user}
        )
        return DjangoUserAdmin.user_change_password(admin_for_request, request, id, form_url)


@admin.register(User)
class UserAdmin(PlatformUserAdmin):
    """A tenant's users: staff rights are dashboard roles (Tenant admin, Auditor), chosen on the user's page; role
    changes are saved and audited with the rest of the page (`accounts.user_changed`: `roles` before and after)."""

    form = TenantUserEditForm
    is_deletable = True
    list_display = ("email", "full_name", "is_active", "is_staff", "dashboard_role_names", "last_login")
    list_filter = ("is_active", "is_staff")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "roles")}),
        ("Second factors", {"fields": ("second_factors",)}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("last_login", "date_joined", "second_factors")

    actions = ["reset_second_factors"]

    @admin.action(description="Reset second factors (TOTP, passkeys, recovery codes)", permissions=["change"])
    def reset_second_factors(self, request: HttpRequest, queryset: Any) -> None:
        """For a user who lost their phone or key: they sign in with their password and enroll again. Audited
        (`accounts.mfa_factors_reset`) with the admin as actor."""
        for user in queryset:
            services.reset_factors(actor=request.user, user=user)
        self.message_user(request, f"Reset the second factors of {len(queryset)} user(s).")

    @admin.display(description="Second factors")
    def second_factors(self, obj: User) -> str:
        """What the user has enrolled (never a secret); the action "Reset second factors" removes them all."""
        if obj.pk is None:
            return "—"
        kinds = [
            "authenticator app" if mfa.has_totp(obj) else "",
            f"{len(mfa.passkeys_of(obj))} passkey(s)" if mfa.passkeys_of(obj) else "",
            f"{mfa.recovery_codes_left(obj)} unused recovery code(s)" if mfa.recovery_codes_left(obj) else "",
        ]
        return ", ".join(k for k in kinds if k) or "none"

    @admin.display(description="Dashboard roles")
    def dashboard_role_names(self, obj: User) -> str:
        return ", ".join(DashboardRole(role).label for role in roles_of(obj)) or "—"

    def get_form(self, request: HttpRequest, obj: User | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if change:  # the add form has no roles: they are chosen on the user's page once the user exists
            form = type(form.__name__, (form,), {"may_change_roles": request.user.is_superuser, "editor": request.user})
        return form

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        if getattr(form, "may_change_roles", False):
            return {"roles": form.cleaned_data.get("roles") or []}
        return {}


@admin.register(MfaSettings)
class MfaSettingsAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """The tenant's second-factor policy: one row at most, never deleted."""

    save_service = staticmethod(services.save_mfa_settings)
    list_display = ["__str__", "require_for_staff", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not MfaSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The tenant dashboard has no Django permission groups: dashboard roles replace them (accounts.roles).
admin.site.unregister(Group)


class PermissionGroupAdmin(ServiceAdminMixin, GroupAdmin):
    """Django's permission groups of the platform admin (public schema)."""

    save_service = staticmethod(services.save_permission_group)
    delete_service = staticmethod(services.delete_permission_group)


def _register_platform_models() -> None:
    platform_admin.register(User, PlatformUserAdmin)
    platform_admin.register(Group, PermissionGroupAdmin)


_register_platform_models()
