"""OpenAPI schema and a plain docs page for the tenant's management API.

The schema is generated from the URLConf of the request: under subfolder routing that is the tenant's
(django-tenants builds one with every pattern under ``t/<slug>/``), so the paths read
``/t/<slug>/api/…`` for the tenant being viewed; under host routing it is ROOT_URLCONF (``/api/…``).
The docs page is server-rendered from that schema: nothing is loaded from a CDN.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from api.permissions import is_api_staff

_METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}


def request_urlconf(request: HttpRequest) -> Any:
    """The URLConf the request was resolved with (the tenant's under subfolder routing)."""
    return getattr(request, "urlconf", None) or settings.ROOT_URLCONF


class TenantSchemaView(SpectacularAPIView):
    """The OpenAPI 3 document of this tenant's API (YAML by default; ``?format=json`` for JSON)."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.urlconf = request_urlconf(request)
        return super().get(request, *args, **kwargs)


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by tag (with the tag's description once), for the docs page."""
    groups: dict[str, dict[str, Any]] = {}
    for path, methods in schema.get("paths", {}).items():
        for method, operation in sorted(methods.items(), key=lambda item: _METHOD_ORDER.get(item[0], 9)):
            if method not in _METHOD_ORDER:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            group = groups.setdefault(tag, {"tag": tag, "description": "", "operations": []})
            description = (operation.get("description") or "").strip()
            if description and not group["description"]:
                group["description"] = description
            operation_id = operation.get("operationId", "")
            group["operations"].append(
                {
                    "method": method.upper(),
                    "path": path,
                    "browsable": method == "get" and "{" not in path,
                    "summary": operation.get("summary")
                    or operation_id.removeprefix(tag.replace("-", "_") + "_").replace("_", " "),
                    "parameters": [
                        f"{p['name']} ({p['in']})" for p in operation.get("parameters", []) if p.get("in") != "header"
                    ],
                }
            )
    return [groups[tag] for tag in sorted(groups)]


@user_passes_test(is_api_staff, login_url="admin:login")
def docs(request: HttpRequest) -> HttpResponse:
    """A readable list of every endpoint, from the same schema the schema endpoint serves."""
    schema = SchemaGenerator(urlconf=request_urlconf(request)).get_schema(request=None, public=True)
    return render(
        request,
        "rbac/api_docs.html",
        {
            "info": schema.get("info", {}),
            "groups": _operations(schema),
            "schema_url": reverse("api:schema"),
            "root_url": reverse("api:api-root"),
        },
    )
