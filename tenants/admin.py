"""Platform admin (``/admin/``): every write of a tenant is `tenants.services.save_tenant` (a new one through
`create_tenant`, never by saving a bare row) or `set_tenants_active`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import construct_instance
from django.http import HttpRequest
from django.utils.html import format_html

from audit.admin import ServiceAdminMixin
from authsec_site.admin_sites import platform_admin
from tenants.models import Domain, Tenant
from tenants.services import save_tenant, set_tenants_active, validate_new_tenant


class TenantCreationForm(forms.ModelForm):
    admin_email = forms.EmailField(help_text="The tenant's first administrator; logs in at /t/<slug>/admin/.")
    admin_password1 = forms.CharField(label="Admin password", widget=forms.PasswordInput, strip=False)
    admin_password2 = forms.CharField(label="Admin password (again)", widget=forms.PasswordInput, strip=False)

    class Meta:
        model = Tenant
        fields = ("slug", "name")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, second = data.get("admin_password1"), data.get("admin_password2")
        if first and second and first != second:
            self.add_error("admin_password2", "The two passwords differ.")
        elif first:
            try:
                validate_password(first)
            except ValidationError as exc:
                self.add_error("admin_password1", exc)
        if data.get("slug") and data.get("name") and data.get("admin_email"):
            try:
                validate_new_tenant(data["slug"], data["name"], data["admin_email"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return data

    def _post_clean(self) -> None:
        # Model validation of schema_name is done by create_tenant; the form has no schema field. The instance
        # still takes the slug and name, which `save_tenant` creates the tenant from.
        self.instance = construct_instance(self, self.instance, self._meta.fields, self._meta.exclude)


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ("domain", "is_primary")
    readonly_fields = ("domain", "is_primary")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tenant, site=platform_admin)
class TenantAdmin(ServiceAdminMixin, admin.ModelAdmin):
    save_service = staticmethod(save_tenant)  # no delete: it would destroy the tenant's users, keys and audit log
    list_display = ("slug", "name", "is_active", "schema_name", "created_at", "dashboard_link")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    readonly_fields = ("slug", "schema_name", "created_at", "dashboard_link")
    fields = ("slug", "name", "is_active", "schema_name", "created_at", "dashboard_link")
    inlines = [DomainInline]
    actions = ["deactivate", "activate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).exclude(schema_name="public")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TenantCreationForm
            kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("slug", "name", "admin_email", "admin_password1", "admin_password2")
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [] if obj is None else self.inlines

    def service_arguments(self, request: HttpRequest, form: Any) -> dict[str, Any]:
        if "admin_email" not in form.cleaned_data:
            return {}  # the change form: name and activation only
        return {"admin_email": form.cleaned_data["admin_email"], "admin_password": form.cleaned_data["admin_password1"]}

    @admin.display(description="Dashboard")
    def dashboard_link(self, obj: Tenant) -> str:
        return format_html('<a href="{0}admin/">{0}admin/</a>', obj.url_prefix)

    @admin.action(description="Deactivate selected tenants (their URLs answer 404)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        count = set_tenants_active(queryset, actor=request.user, is_active=False)
        messages.success(request, f"Deactivated {count} tenant(s).")

    @admin.action(description="Activate selected tenants", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        count = set_tenants_active(queryset, actor=request.user, is_active=True)
        messages.success(request, f"Activated {count} tenant(s).")
