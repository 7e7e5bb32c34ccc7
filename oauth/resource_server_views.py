"""The two custom endpoints of the SDK's runtime API, under the tenant's issuer:

GET  {issuer}/authsec/resource-servers/{resource_server_id}/sdk-policy    (`ScopeMatrixClient`)
PUT  {issuer}/authsec/resource-servers/{resource_server_id}/sdk-manifest  (`publish_manifest`)

Both take HTTP Basic with the resource server's introspection credentials, answer JSON only (errors too), and
are CSRF-exempt: the SDK sends no cookies.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from authsec_site.lib.jsonbody import JSONBodyError, parse_json
from oauth import resource_servers as rs


def _error(status: int, error: str, description: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _unauthorized() -> JsonResponse:
    return _error(
        401,
        "invalid_client",
        "Unknown resource server or wrong credentials: use HTTP Basic with its introspection client id and secret.",
        WWW_Authenticate='Basic realm="authsec-resource-servers", charset="UTF-8"',
    )


def _method_not_allowed(allowed: str) -> JsonResponse:
    return _error(405, "invalid_request", f"Use {allowed} on this endpoint.", Allow=allowed)


@csrf_exempt
def sdk_policy(request: HttpRequest, resource_server_id: str) -> JsonResponse:
    """The tool→scope policy of one resource server, for the SDK's policy cache."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET")
    server = rs.authenticate(request, resource_server_id)
    if server is None:
        return _unauthorized()
    document = rs.policy_document(server)
    rs.note_policy_fetch(server, document["generation"])
    response = JsonResponse(document)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
def sdk_manifest(request: HttpRequest, resource_server_id: str) -> JsonResponse:
    """Replace the server's tool inventory; admins then map the tools in the dashboard."""
    if request.method != "PUT":
        return _method_not_allowed("PUT")
    server = rs.authenticate(request, resource_server_id)
    if server is None:
        return _unauthorized()
    if not server.is_active:
        return _error(403, "access_denied", "This resource server is disabled in the AuthSec dashboard.")
    try:
        payload: Any = parse_json(request.body or b"null")
    except RequestDataTooBig:
        return _error(413, "invalid_request", "The manifest is too large.")
    except JSONBodyError as exc:
        if exc.reason == "size":
            return _error(413, "invalid_request", "The manifest is too large.")
        if exc.is_limit:
            return _error(400, "invalid_request", f"The manifest is refused: {exc.message}")
        return _error(400, "invalid_request", "The manifest must be a JSON document.")
    try:
        tools = rs.parse_manifest(payload)
    except rs.ManifestError as exc:
        return _error(400, "invalid_request", str(exc))
    result = rs.publish_manifest(server=server, tools=tools, request=request)
    response = JsonResponse(
        {
            "status": "accepted",
            "resource_server_id": str(server.pk),
            "tools": result.tools,
            "added": result.added,
            "removed": result.removed,
            "held": result.held,
            "generation": result.generation,
        }
    )
    response["Cache-Control"] = "no-store"
    return response
