"""The two admin sites: the platform admin (public schema, /admin/) and each tenant's dashboard.

Tenant dashboards use Django's default `admin.site` (it is served at /t/<tenant>/admin/), an instance of
`TenantAdminSite` (`authsec_site.admin_config.TenantAdminConfig` names it): its index and sidebar list the models by
the task an admin came for (`TASK_GROUPS`), not by app. Platform-only models such as `Tenant` are registered on
`platform_admin` alone, so no tenant dashboard lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, re_path, reverse


@dataclass(frozen=True)
class Page:
    """A dashboard page that is not a model's changelist, listed in a task group for those who may open it."""

    name: str
    url_name: str
    permissions: tuple[str, ...]  # any one of them shows the link (the page itself checks each of its parts)


@dataclass(frozen=True)
class TaskGroup:
    slug: str
    name: str
    description: str
    models: tuple[str, ...]  # "app_label.model_name", in the order the group lists them
    pages: tuple[Page, ...] = ()


TOKENS_PAGE = Page(
    "Tokens & sessions",
    "dashboard-tokens",
    (
        "oauth2_provider.view_accesstoken",
        "oauth2_provider.view_refreshtoken",
        "mcp_endpoint.view_authsession",
    ),
)

# Every model registered on the tenant dashboard is in exactly one group (tests/authsec_site/test_dashboard_index.py).
TASK_GROUPS: tuple[TaskGroup, ...] = (
    TaskGroup(
        "access",
        "Access",
        "Who may do what: users, roles, groups, scopes, resources and permissions.",
        (
            "accounts.user",
            "rbac.role",
            "rbac.group",
            "rbac.scope",
            "rbac.resource",
            "rbac.permission",
            "rbac.rolebinding",
            "rbac.groupmembership",
        ),
    ),
    TaskGroup(
        "applications",
        "Applications & tools",
        "The MCP applications this tenant hosts, the policy of each tool, and human approval of sensitive calls.",
        ("rbac.application", "rbac.toolpolicy", "rbac.toolpin", "approvals.approvalsettings"),
    ),
    TaskGroup(
        "clients",
        "Clients & sign-in",
        "OAuth clients and what users approved, how people sign in, and the tokens and sessions that are live.",
        (
            "oauth.client",
            "oauth.consent",
            "oauth.upstreamprovider",
            "accounts.mfasettings",
            "oauth.resourceserver",
            "oauth.providersettings",
            "oauth.signingkey",
        ),
        (TOKENS_PAGE,),
    ),
    TaskGroup(
        "services",
        "Services & secrets",
        "External services whose credentials live only in Vault, and their rotation.",
        ("services.service",),
    ),
    TaskGroup(
        "workloads",
        "Workloads",
        "SPIFFE workloads of this tenant's trust domain and the SVIDs issued to them.",
        ("workloads.workload",),
    ),
    TaskGroup(
        "audit",
        "Audit",
        "The append-only audit log, its checkpoints, retention and delivery to your SIEM.",
        ("audit.auditevent", "audit.auditsink", "audit.auditsettings", "audit.auditcheckpoint"),
    ),
)
OTHER = TaskGroup("other", "Other", "Pages not yet sorted into a task.", ())


def group_of(label: str) -> TaskGroup:
    """The task group listing the model `label` ("app_label.model_name"); `OTHER` when none does."""
    return next((group for group in TASK_GROUPS if label in group.models), OTHER)


class TenantAdminSite(admin.AdminSite):
    """A tenant's dashboard: Django's admin with the index and sidebar grouped by task."""

    site_header = "AuthSec Server"
    site_title = "AuthSec dashboard"
    index_title = "Tenant administration"
    # The dashboard home shows what waits for an admin (client registrations held for approval) above the tasks.
    index_template = "admin/tenant_index.html"
    # A tenant's "View site" would lead out of the tenant to the platform home page: hide it.
    site_url = None  # type: ignore[assignment]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        """By task (`TASK_GROUPS`) for the index and the sidebar; one app's own page (/admin/<app>/) stays Django's."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        models = {
            f"{app['app_label']}.{model['object_name'].lower()}": model
            for app in self._build_app_dict(request).values()
            for model in app["models"]
        }
        grouped = []
        for group in (*TASK_GROUPS, OTHER):
            entries = [models.pop(label) for label in group.models if label in models]
            entries += [self._page_entry(request, page) for page in group.pages if self._may_open(request, page)]
            if group is OTHER:
                entries = sorted(models.values(), key=lambda model: model["name"])
            if entries:
                grouped.append(self._group_entry(group, entries))
        return grouped

    def _may_open(self, request: HttpRequest, page: Page) -> bool:
        return any(request.user.has_perm(permission) for permission in page.permissions)

    def _page_entry(self, request: HttpRequest, page: Page) -> dict[str, Any]:
        return {
            "name": page.name,
            "object_name": page.url_name.replace("-", "_"),
            "perms": {"view": True},
            "admin_url": reverse(page.url_name),
            "add_url": None,
            "view_only": False,
        }

    def _group_entry(self, group: TaskGroup, entries: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            url = reverse(f"{self.name}:task_group", kwargs={"slug": group.slug}, current_app=self.name)
        except NoReverseMatch:  # OTHER has no page of its own
            url = reverse(f"{self.name}:index", current_app=self.name)
        return {
            "name": group.name,
            "app_label": group.slug,
            "app_url": url,
            "has_module_perms": True,
            "models": entries,
            "description": group.description,
        }

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        slugs = "|".join(group.slug for group in TASK_GROUPS)
        return [
            re_path(rf"^tasks/(?P<slug>{slugs})/$", self.admin_view(self.task_group), name="task_group"),
            *super().get_urls(),
        ]

    def task_group(self, request: HttpRequest, slug: str) -> HttpResponse:
        """One task group's models (what its caption links to); 404 when the user may see none of them."""
        group = next(group for group in TASK_GROUPS if group.slug == slug)
        app_list = [app for app in self.get_app_list(request) if app["app_label"] == group.slug]
        if not app_list:
            raise Http404("The requested admin page does not exist.")
        context = {
            **self.each_context(request),
            "title": group.name,
            "subtitle": None,
            "app_list": app_list,
            "app_label": group.slug,
            "task_group": group,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/task_group.html", context)


class PlatformAdminSite(admin.AdminSite):
    site_header = "AuthSec Server — platform"
    site_title = "AuthSec platform"
    index_title = "Platform administration"


platform_admin = PlatformAdminSite(name="platform_admin")

# Both sites sign in through the throttled, audited login form: `accounts.apps.AccountsConfig.ready` sets it,
# so that every app's admin module can import the sites without importing accounts.
