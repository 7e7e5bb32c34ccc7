"""The tenant dashboard for RBAC: every model with search, filters, autocomplete, inlines and bulk actions,
plus two pages beyond CRUD — a user's effective permissions and the policy simulator (`rbac.views`) — and the
change preview: who gains and who loses which tools, shown before a change is saved (`ChangePreviewMixin`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.postgres.forms import SimpleArrayField
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts import services as accounts_services
from accounts.admin import UserAdmin as BaseUserAdmin
from accounts.models import User
from audit.admin import ServiceAdminMixin
from audit.queries import can_review, filtered_list_url, review_link
from rbac import access_diff, application_pages, services, views
from rbac.access_diff import AccessDiff, Users
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

PREVIEW = "_preview"  # the name of the change form's "Preview changes" button


class _Previewed(Exception):  # noqa: N818 - not an error: carries the preview out of Django's change view
    def __init__(self, diff: AccessDiff) -> None:
        self.diff = diff


class ChangePreviewMixin:
    """Shows, before a change is saved, who gains and who loses which tools, and records it when it is saved.

    - The change form gets a "Preview changes" button (templates/admin/rbac/submit_line.html). Its POST runs the
      admin's usual validation; a valid form is then written (`write_form`) in a transaction that is rolled
      back, and the affected users (`affected_users`, before and after the change) are decided by the one engine
      before and after it (`rbac.access_diff`). The page shows the diff and re-posts the same data, with a fresh
      CSRF token, through "Confirm and save".
    - The delete confirmation page shows the diff of the deletion, computed the same way.
    - Every write of these pages runs inside `access_diff.recording()`: each RBAC service function puts the diff
      its write caused, computed in the write's own transaction, in its audit event (``access_changes``).
    """

    preview_on_add = True  # False where the add form holds a secret that the preview page would re-post
    preview_on_delete = True

    def affected_users(self, obj: Any) -> Users:
        """Users whose access `obj`'s change can alter (None: everyone); asked before and after the change."""
        return None

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        previewable = object_id is not None or self.preview_on_add
        extra = {**(extra_context or {}), "change_preview": previewable}
        if previewable and request.method == "POST" and PREVIEW in request.POST:
            request._rbac_preview = True  # type: ignore[attr-defined]  # read by save_related
            try:
                return super().changeform_view(request, object_id, form_url, extra)  # type: ignore[misc]
            except _Previewed as previewed:
                return self._preview_page(request, object_id, previewed.diff)
        with access_diff.recording():
            return super().changeform_view(request, object_id, form_url, extra)  # type: ignore[misc]

    def save_related(self, request: HttpRequest, form: Any, formsets: list[Any], change: bool) -> None:
        if not getattr(request, "_rbac_preview", False):
            super().save_related(request, form, formsets, change)  # type: ignore[misc]
            return
        obj = form.instance
        write = lambda: self.write_form(request, form, formsets)  # type: ignore[attr-defined]  # noqa: E731
        raise _Previewed(self.preview(lambda: self.affected_users(obj), write))

    @staticmethod
    def preview(affected: Any, write: Any) -> AccessDiff:
        """The diff `write` would make, for the users `affected()` names before or after it; nothing is kept.

        The change is written twice in one transaction that is rolled back: first in a savepoint to learn who it
        affects (a new holder of a role is found only after the write), then again between the two snapshots."""
        with transaction.atomic():
            users_before = affected()
            with transaction.atomic():
                write()
                users = access_diff.union(users_before, affected())
                transaction.set_rollback(True)
            before = access_diff.snapshot(users)
            write()
            after = access_diff.snapshot(users)
            transaction.set_rollback(True)
        return access_diff.compare(before, after)

    def _preview_page(self, request: HttpRequest, object_id: str | None, diff: AccessDiff) -> HttpResponse:
        opts = self.model._meta  # type: ignore[attr-defined]
        obj = self.get_object(request, unquote(object_id)) if object_id else None  # type: ignore[attr-defined]
        fields = [
            (name, value)
            for name, values in request.POST.lists()
            if name not in ("csrfmiddlewaretoken", PREVIEW)
            for value in values
        ]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": "Preview changes",
            "subtitle": str(obj) if obj is not None else f"New {opts.verbose_name}",
            "opts": opts,
            "original": obj,
            "diff": diff,
            "fields": fields,
            "form_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/rbac/change_preview.html", context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        may_delete = obj is not None and self.has_delete_permission(request, obj)  # type: ignore[attr-defined]
        if self.preview_on_delete and request.method == "GET" and may_delete:

            def delete() -> None:  # a fresh row each time: deleting clears the instance's primary key
                row = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
                self.delete_service.nested(row, actor=request.user)  # type: ignore[attr-defined]

            extra["access_diff"] = self.preview(lambda: self.affected_users(obj), delete)
            extra["access_preview"] = True
        with access_diff.recording():
            return super().delete_view(request, object_id, extra)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with access_diff.recording():  # bulk actions: delete selected, enable / disable tool policies
            return super().changelist_view(request, extra_context)  # type: ignore[misc]


class RbacAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_per_page = 50


class PreviewedAdmin(ChangePreviewMixin, RbacAdmin):
    """An RBAC page whose changes alter someone's access: previewed before saving, recorded when saved."""


# --- Inlines ----------------------------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = GroupMembership
    save_service = staticmethod(services.save_group_membership)
    delete_service = staticmethod(services.delete_group_membership)
    extra = 0
    autocomplete_fields = ["user"]
    verbose_name = "member"
    verbose_name_plural = "members"


class UserMembershipInline(MembershipInline):
    autocomplete_fields = ["group"]
    fk_name = "user"
    verbose_name = "group membership"
    verbose_name_plural = "group memberships"


class GroupRoleBindingInline(admin.TabularInline):
    model = RoleBinding
    save_service = staticmethod(services.save_role_binding)
    delete_service = staticmethod(services.delete_role_binding)
    fk_name = "group"
    fields = ["role"]
    extra = 0
    autocomplete_fields = ["role"]
    verbose_name = "role of this group"
    verbose_name_plural = "roles of this group"


class UserRoleBindingInline(admin.TabularInline):
    model = RoleBinding
    save_service = staticmethod(services.save_role_binding)
    delete_service = staticmethod(services.delete_role_binding)
    fk_name = "user"
    fields = ["role"]
    extra = 0
    autocomplete_fields = ["role"]
    verbose_name = "role"
    verbose_name_plural = "roles"


class RoleBindingInline(admin.TabularInline):
    model = RoleBinding
    save_service = staticmethod(services.save_role_binding)
    delete_service = staticmethod(services.delete_role_binding)
    fk_name = "role"
    fields = ["user", "group"]
    extra = 0
    autocomplete_fields = ["user", "group"]
    verbose_name = "holder (a user or a group)"
    verbose_name_plural = "holders"


class ToolPolicyInline(admin.TabularInline):
    model = ToolPolicy
    save_service = staticmethod(services.save_tool_policy)
    delete_service = staticmethod(services.delete_tool_policy)
    fields = [
        "tool_name",
        "roles",
        "groups",
        "scopes",
        "resources",
        "permissions",
        "require_all",
        "is_enabled",
        "log_arguments",
        "approval",
        "approval_role",
        "approval_count",
    ]
    extra = 0
    show_change_link = True


# --- Named objects ------------------------------------------------------------------------------------------------


@admin.register(Scope)
class ScopeAdmin(RbacAdmin):
    save_service = staticmethod(services.save_scope)
    delete_service = staticmethod(services.delete_scope)
    list_display = ["name", "description", "role_count"]
    search_fields = ["name", "description"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Scope]:
        return super().get_queryset(request).annotate(role_count=Count("roles"))

    @admin.display(description="roles", ordering="role_count")
    def role_count(self, obj: Scope) -> int:
        return obj.role_count  # type: ignore[attr-defined]


@admin.register(Resource)
class ResourceAdmin(ScopeAdmin):
    save_service = staticmethod(services.save_resource)
    delete_service = staticmethod(services.delete_resource)


@admin.register(Permission)
class PermissionAdmin(RbacAdmin):
    save_service = staticmethod(services.save_permission)
    delete_service = staticmethod(services.delete_permission)
    list_display = ["__str__", "resource", "action", "description"]
    list_filter = ["resource"]
    search_fields = ["action", "resource__name", "description"]
    autocomplete_fields = ["resource"]
    list_select_related = ["resource"]


@admin.register(Role)
class RoleAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_role)
    delete_service = staticmethod(services.delete_role)
    list_display = ["name", "description", "holder_count", "grants"]
    search_fields = ["name", "description"]
    list_filter = ["scopes", "resources"]
    autocomplete_fields = ["scopes", "resources", "permissions"]
    inlines = [RoleBindingInline]

    def affected_users(self, obj: Role) -> Users:
        return access_diff.holders_of_roles([obj.pk]) if obj.pk else set()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Role]:
        return (
            super()
            .get_queryset(request)
            .annotate(holder_count=Count("bindings", distinct=True))
            .prefetch_related("scopes", "resources", "permissions__resource")
        )

    @admin.display(description="holders", ordering="holder_count")
    def holder_count(self, obj: Role) -> int:
        return obj.holder_count  # type: ignore[attr-defined]

    @admin.display(description="grants")
    def grants(self, obj: Role) -> str:
        parts = [
            *(f"scope {s.name}" for s in obj.scopes.all()),
            *(f"resource {r.name}" for r in obj.resources.all()),
            *(f"permission {p}" for p in obj.permissions.all()),
        ]
        return ", ".join(parts) or "—"


@admin.register(Group)
class GroupAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_group)
    delete_service = staticmethod(services.delete_group)
    list_display = ["name", "description", "member_count", "role_names"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline, GroupRoleBindingInline]
    exclude = ["members"]

    def affected_users(self, obj: Group) -> Users:
        return access_diff.members_of_groups([obj.pk]) if obj.pk else set()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("memberships", distinct=True))
            .prefetch_related("role_bindings__role")
        )

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: Group) -> int:
        return obj.member_count  # type: ignore[attr-defined]

    @admin.display(description="roles")
    def role_names(self, obj: Group) -> str:
        return ", ".join(sorted(b.role.name for b in obj.role_bindings.all())) or "—"


@admin.register(RoleBinding)
class RoleBindingAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_role_binding)
    delete_service = staticmethod(services.delete_role_binding)
    list_display = ["role", "user", "group", "created_at"]
    list_filter = ["role"]
    search_fields = ["role__name", "user__email", "group__name"]
    autocomplete_fields = ["role", "user", "group"]
    list_select_related = ["role", "user", "group"]

    def affected_users(self, obj: RoleBinding) -> Users:
        # The holder the form names and the one stored (a changed row is the old grant revoked, the new one granted).
        stored = RoleBinding.objects.filter(pk=obj.pk).first() if obj.pk else None
        rows = [obj] if stored is None else [obj, stored]
        return access_diff.union(*(access_diff.holders_of_binding(row) for row in rows))


@admin.register(GroupMembership)
class GroupMembershipAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_group_membership)
    delete_service = staticmethod(services.delete_group_membership)
    list_display = ["group", "user", "created_at"]
    list_filter = ["group"]
    search_fields = ["group__name", "user__email"]
    autocomplete_fields = ["group", "user"]
    list_select_related = ["group", "user"]

    def affected_users(self, obj: GroupMembership) -> Users:
        stored = GroupMembership.objects.filter(pk=obj.pk).first() if obj.pk else None
        return {row.user_id for row in (obj, stored) if row is not None and row.user_id is not None}


# --- Applications and tool policies ---------------------------------------------------------------------------------


class ToolPolicyForm(forms.ModelForm):
    """Lists are typed comma-separated; every name must exist in this tenant (matching is case-sensitive)."""

    class Meta:
        model = ToolPolicy
        fields = [
            "application",
            "tool_name",
            "description",
            *KINDS,
            "require_all",
            "is_enabled",
            "log_arguments",
            *services.APPROVAL_FIELDS,
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in KINDS:
            self.fields[kind] = SimpleArrayField(
                forms.CharField(max_length=100),
                required=False,
                help_text=f"Comma-separated {kind}; empty: not required.",
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        existing = known_names()
        for kind in KINDS:
            # Names already in the policy may have been deleted since; only newly typed names must exist.
            previous = set(getattr(self.instance, kind) or []) if self.instance.pk else set()
            unknown = sorted(set(data.get(kind) or []) - existing[kind] - previous)
            if unknown:
                singular = kind.rstrip("s")
                self.add_error(kind, f"Unknown {singular}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
            elif data.get(kind):
                data[kind] = sorted(set(data[kind]))
        role = data.get("approval_role")
        if role and role != self.instance.approval_role and role not in existing["roles"]:
            self.add_error("approval_role", f"Unknown role: {role}.")
        return data


@admin.register(ToolPolicy)
class ToolPolicyAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_tool_policy)
    delete_service = staticmethod(services.delete_tool_policy)
    form = ToolPolicyForm
    list_display = ["tool_name", "application", "requirement_text", "require_all", "is_enabled", "approval"]
    list_filter = ["application", "is_enabled", "require_all", "approval"]
    search_fields = ["tool_name", "description", "application__slug"]
    autocomplete_fields = ["application"]
    list_select_related = ["application"]
    actions = ["enable", "disable"]

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        return [*display, "audit_link"] if can_review(request.user) else display

    @admin.display(description="audit")
    def audit_link(self, obj: ToolPolicy) -> str:
        url = filtered_list_url(application=obj.application.slug, tool=obj.tool_name)
        return format_html('<a href="{}" class="auditlink">audit log</a>', url)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        policy = (
            ToolPolicy.objects.select_related("application").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        extra = dict(extra_context or {})
        if policy is not None:
            extra["audit_url"] = review_link(request.user, application=policy.application.slug, tool=policy.tool_name)
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="requirement")
    def requirement_text(self, obj: ToolPolicy) -> str:
        parts = [f"{kind}: {', '.join(getattr(obj, kind))}" for kind in KINDS if getattr(obj, kind)]
        return "; ".join(parts) or "any authenticated user"

    @admin.action(description="Enable selected tool policies", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ToolPolicy]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected tool policies (the tools are then denied)", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ToolPolicy]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[ToolPolicy], value: bool) -> None:
        count = services.set_tool_policies_enabled(
            queryset.select_related("application"), actor=request.user, enabled=value
        )
        messages.success(request, f"{'Enabled' if value else 'Disabled'} {count} tool policies.")


@admin.register(Application)
class ApplicationAdmin(PreviewedAdmin):
    save_service = staticmethod(services.save_application)
    delete_service = staticmethod(services.delete_application)
    list_display = ["slug", "name", "is_active", "tool_count", "mcp_url", "sdk_client_id"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name", "description"]
    readonly_fields = ["sdk_client_id"]  # for the AuthSec SDK's client_id (docs/sdk.md); found by sdkmgr
    inlines = [ToolPolicyInline]
    actions = ["activate", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Application]:
        return super().get_queryset(request).annotate(tool_count=Count("tool_policies"))

    @admin.display(description="tools", ordering="tool_count")
    def tool_count(self, obj: Application) -> int:
        return obj.tool_count  # type: ignore[attr-defined]

    @admin.display(description="MCP endpoint")
    def mcp_url(self, obj: Application) -> str:
        tenant = getattr(connection, "tenant", None)
        return f"{tenant.url_prefix}mcp/{obj.slug}" if tenant is not None else f"mcp/{obj.slug}"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {"simulator_url": reverse("admin:rbac_simulator", current_app=self.admin_site.name)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.action(description="Activate selected applications", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(
        description="Deactivate selected applications (their MCP endpoints answer 404)", permissions=["change"]
    )
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Application]) -> None:
        self._set_active(request, queryset, False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Application], value: bool) -> None:
        count = services.set_applications_active(queryset, actor=request.user, active=value)
        messages.success(request, f"{'Activated' if value else 'Deactivated'} {count} applications.")

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        custom = [
            path("simulator/", wrap(views.simulator), name="rbac_simulator"),
            path("<int:object_id>/connect/", wrap(application_pages.connect_client), name="rbac_application_connect"),
            path("<int:object_id>/matrix/", wrap(application_pages.tool_matrix), name="rbac_application_matrix"),
            path(
                "<int:object_id>/matrix.csv",
                wrap(application_pages.tool_matrix_csv),
                name="rbac_application_matrix_csv",
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = dict(extra_context or {})
        if object_id.isdigit():
            name = self.admin_site.name
            extra["connect_url"] = reverse("admin:rbac_application_connect", args=[int(object_id)], current_app=name)
            if request.user.has_perm("accounts.view_user"):
                extra["matrix_url"] = reverse("admin:rbac_application_matrix", args=[int(object_id)], current_app=name)
        return super().change_view(request, object_id, form_url, extra)


# --- Users: RBAC inlines and the effective-permissions page ---


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(ChangePreviewMixin, BaseUserAdmin):
    save_service = staticmethod(accounts_services.save_user)
    delete_service = staticmethod(accounts_services.delete_user)
    inlines = [UserRoleBindingInline, UserMembershipInline]
    list_display = [*BaseUserAdmin.list_display, "effective_link"]
    preview_on_add = False  # the add form holds the new password: never re-posted through a page
    preview_on_delete = False  # a deleted user loses everything; deleting one ends their access (accounts.signals)

    def affected_users(self, obj: User) -> Users:
        return {obj.pk} if obj.pk else set()

    @admin.display(description="permissions")
    def effective_link(self, obj: User) -> str:
        url = reverse("admin:rbac_effective_permissions", args=[obj.pk], current_app=self.admin_site.name)
        return format_html('<a href="{}">effective permissions</a>', url)

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        return [*display, "audit_link"] if can_review(request.user) else display

    @admin.display(description="audit")
    def audit_link(self, obj: User) -> str:
        return format_html('<a href="{}" class="auditlink">audit log</a>', filtered_list_url(actor=obj.email))

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:user_id>/effective/",
                self.admin_site.admin_view(views.effective_permissions),
                name="rbac_effective_permissions",
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        extra = dict(extra_context or {})
        if object_id.isdigit():
            extra["effective_url"] = reverse(
                "admin:rbac_effective_permissions", args=[int(object_id)], current_app=self.admin_site.name
            )
            subject = User.objects.filter(pk=int(object_id)).first()
            if subject is not None:
                extra["audit_url"] = review_link(request.user, actor=subject.email)
        return super().change_view(request, object_id, form_url, extra)
