"""``/sdkmgr/…``: exact paths (no trailing slashes, no redirects), every unknown path a JSON 404."""

from django.urls import path, re_path

from sdkmgr import views

app_name = "sdkmgr"
urlpatterns = [
    path("mcp-auth/health", views.auth_health, name="auth-health"),
    path("mcp-auth/tools/list", views.tools_list, name="tools-list"),
    path("mcp-auth/tools/call/<str:tool_name>", views.tools_call, name="tools-call"),
    path("mcp-auth/protect-tool", views.protect_tool, name="protect-tool"),
    path("mcp-auth/cleanup-sessions", views.cleanup_sessions, name="cleanup-sessions"),
    path("mcp-auth/start", views.start, name="start"),
    path("mcp-auth/status/<str:session_id>", views.status, name="status"),
    path("services/health", views.services_health, name="services-health"),
    path("services/credentials", views.credentials, name="credentials"),
    path("services/user-details", views.user_details, name="user-details"),
    re_path(r"^(?P<path>.*)$", views.not_found, name="not-found"),
]
