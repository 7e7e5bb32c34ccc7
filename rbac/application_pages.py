"""Two pages of each application in the tenant dashboard: "Connect a client" (with its endpoint check) and the
user × tool matrix. Both are reached from the application's change page; both only read (the check writes
nothing), so neither goes through a service.

Who may open them: tenant staff with `rbac.view_application`; the matrix shows every user's decisions, so it
also needs `accounts.view_user` (as the policy simulator does for one user).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_http_methods

from rbac import connect, matrix
from rbac.models import Application

MAX_QUERY = 254  # an email's longest form: longer filters cannot match anything


def _require(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def _tenant_slug() -> str:
    return connection.tenant.slug  # type: ignore[attr-defined]


@require_http_methods(["GET", "POST"])
def connect_client(request: HttpRequest, object_id: int) -> HttpResponse:
    """Copy-paste setup for each MCP client; POST runs the endpoint check and shows each step."""
    _require(request, "rbac.view_application")
    application = get_object_or_404(Application, pk=object_id)
    urls = connect.urls_for(_tenant_slug(), application)
    steps = connect.check_endpoint(_tenant_slug(), application) if request.method == "POST" else None
    context = {
        **admin.site.each_context(request),
        "title": f"Connect a client to {application.name}",
        "application": application,
        "urls": urls,
        "snippets": connect.snippets(urls, application),
        "advice": connect.mode_advice(application),
        "steps": steps,
        "all_ok": bool(steps) and all(step.ok for step in steps),
    }
    return render(request, "rbac/application_connect.html", context)


def _filters(request: HttpRequest) -> tuple[str, str]:
    query = request.GET.get("q", "").strip()[:MAX_QUERY]
    tool = request.GET.get("tool", "").strip()[:128]
    return query, tool


@require_GET
def tool_matrix(request: HttpRequest, object_id: int) -> HttpResponse:
    """Users × tools of one application, 50 users a page, each cell the engine's decision with its reason."""
    _require(request, "rbac.view_application", "accounts.view_user")
    application = get_object_or_404(Application, pk=object_id)
    query, tool = _filters(request)
    grid, shown = matrix.page(application, query=query, tool=tool, number=request.GET.get("page", 1))
    filters = {key: value for key, value in (("q", query), ("tool", tool)) if value}
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": f"Who may use which tool: {application.name}",
        "application": application,
        "matrix": grid,
        "page_obj": shown,
        "query": query,
        "tool": tool,
        "all_tools": [policy.tool_name for policy in matrix.tool_policies(application)],
        "filter_query": urlencode(filters),
    }
    return render(request, "rbac/application_matrix.html", context)


@require_GET
def tool_matrix_csv(request: HttpRequest, object_id: int) -> HttpResponse:
    """The whole filtered matrix as CSV (every page)."""
    _require(request, "rbac.view_application", "accounts.view_user")
    application = get_object_or_404(Application, pk=object_id)
    query, tool = _filters(request)
    # Built here, not streamed: the rows are read in the tenant's schema, which is set for this request only.
    body = "".join(matrix.csv_lines(application, query=query, tool=tool))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{application.slug}-tool-matrix.csv"'
    response["Cache-Control"] = "no-store"
    return response
