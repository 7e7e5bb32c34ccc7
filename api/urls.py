"""URLs of the management API, mounted at /t/<tenant>/api/ (URL names ``api:<thing>-<action>``)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from api import pins, schema, views

app_name = "api"

router = DefaultRouter()
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("roles", views.RoleViewSet, basename="role")
router.register("groups", views.GroupViewSet, basename="group")
router.register("scopes", views.ScopeViewSet, basename="scope")
router.register("resources", views.ResourceViewSet, basename="resource")
router.register("permissions", views.PermissionViewSet, basename="permission")
router.register("tool-policies", views.ToolPolicyViewSet, basename="toolpolicy")
router.register("role-bindings", views.RoleBindingViewSet, basename="rolebinding")
router.register("group-memberships", views.GroupMembershipViewSet, basename="groupmembership")
router.register("users", views.UserViewSet, basename="user")
router.register("tool-pins", pins.ToolPinViewSet, basename="toolpin")

urlpatterns = [
    path("schema/", schema.TenantSchemaView.as_view(), name="schema"),
    path("docs/", schema.docs, name="docs"),
    *router.urls,
]
