"""Platform admin (``/admin/``): tenants are created through `create_tenant`, never by saving a bare row."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from audit.admin import AuditedAdminMixin
from authsec_site.admin_sites import platform_admin
from tenants.models import Domain, Tenant
from tenants.services import create_tenant, set_tenant_active, validate_new_tenant


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
        # Model validation of schema_name is done by create_tenant; the form has no schema field.
        pass


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ("domain", "is_primary")
    readonly_fields = ("domain", "is_primary")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tenant, site=platform_admin)
class TenantAdmin(AuditedAdminMixin, admin.ModelAdmin):
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

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            if "is_active" in form.changed_data:
                set_tenant_active(actor=request.user, tenant=Tenant.objects.get(pk=obj.pk), is_active=obj.is_active)
            obj.save(update_fields=["name", "is_active"])
            return
        created = create_tenant(
            actor=request.user,
            slug=form.cleaned_data["slug"],
            name=form.cleaned_data["name"],
            admin_email=form.cleaned_data["admin_email"],
            admin_password=form.cleaned_data["admin_password1"],
        )
        # The admin keeps working with `obj`; make it the saved row.
        obj.pk = created.tenant.pk
        obj.schema_name = created.tenant.schema_name
        obj.created_at = created.tenant.created_at
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a tenant destroys its users, keys and audit log: deactivate instead.
        return False

    @admin.display(description="Dashboard")
    def dashboard_link(self, obj: Tenant) -> str:
        return format_html('<a href="{0}admin/">{0}admin/</a>', obj.url_prefix)

    @admin.action(description="Deactivate selected tenants (their URLs answer 404)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(actor=request.user, tenant=tenant, is_active=False)
        messages.success(request, f"Deactivated {queryset.count()} tenant(s).")

    @admin.action(description="Activate selected tenants", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            set_tenant_active(actor=request.user, tenant=tenant, is_active=True)
        messages.success(request, f"Activated {queryset.count()} tenant(s).")
