"""The hosted MCP endpoint (placeholder stage): one streamable-HTTP app for ``/t/<tenant>/mcp/<app>``.

The tenant is resolved (unknown or inactive → 404) before any MCP message is read. No tool is exposed
yet: the tool registry, RBAC filtering and login tools arrive with the MCP endpoint feature. The session
manager is stateless for now, so no MCP session can be carried from one tenant's URL to another's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from mcp import types
from mcp.server.lowlevel import NotificationOptions, Server  # noqa: F401  (NotificationOptions used later)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

MCP_PATH = re.compile(r"^/t/(?P<tenant>[a-z][a-z0-9-]{0,38}[a-z0-9])/mcp/(?P<app>[a-z0-9][a-z0-9_-]{0,63})$")


async def _list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    # Fail closed: until tools and policies exist, nobody sees any tool.
    return types.ListToolsResult(tools=[])


def build_server() -> Server[Any]:
    return Server(
        "authsec", version="0.1.0", instructions="AuthSec Server hosted MCP endpoint.", on_list_tools=_list_tools
    )


def build_session_manager() -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(
        app=build_server(),
        stateless=True,
        json_response=True,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(settings.MCP_ALLOWED_HOSTS),
            allowed_origins=list(settings.MCP_ALLOWED_ORIGINS),
        ),
    )


def _tenant_is_active(slug: str) -> bool:
    from tenants.models import Domain

    close_old_connections()
    connection.set_schema_to_public()
    return Domain.objects.filter(domain=slug, tenant__is_active=True).exclude(tenant__schema_name="public").exists()


async def _json_error(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class McpEndpoint:
    """ASGI app for ``/t/<tenant>/mcp/<app>``; the root router enters `session_manager.run()` at startup."""

    def __init__(self) -> None:
        self.session_manager = build_session_manager()

    async def __call__(self, scope: Scope, receive: Receive, send: Send, *, tenant: str, app: str) -> None:
        if not await sync_to_async(_tenant_is_active)(tenant):
            await _json_error(send, 404, "not_found", "No such MCP endpoint.")
            return
        scope = dict(scope, state={**scope.get("state", {}), "authsec_tenant": tenant, "authsec_app": app})
        await self.session_manager.handle_request(scope, receive, send)
