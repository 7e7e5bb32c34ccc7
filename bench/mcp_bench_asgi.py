"""The ASGI app `make bench-mcp` serves under one uvicorn: our root router (tenant endpoints) plus a plain,
unprotected `mcp` low-level server with the same tool(s) at ``/plain/mcp`` and ``/plain1k/mcp``, with sessions
like ours (handshake-era protocol: initialize once per client, then requests on the session)."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import mcp_types as types  # noqa: E402
from mcp.server.lowlevel import Server  # noqa: E402
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

from authsec_site.asgi import RootRouter  # sets DJANGO_SETTINGS_MODULE and sets Django up
from mcp_endpoint.registry import registry  # noqa: E402

# Per-request INFO lines ("Terminating session") would be measured too; both servers log through them.
logging.getLogger("mcp").setLevel(logging.WARNING)
N_BULK = int(os.environ.get("BENCH_BULK_TOOLS", "1000"))


def register_bulk_tools(n: int = N_BULK) -> list[str]:
    """n trivial open tools (bulk_0000…), registered in our registry, for the tools/list figure."""
    from mcp_endpoint.registry import protected_by_AuthSec

    names = []
    for i in range(n):
        name = f"bulk_{i:04d}"
        if name not in registry:

            async def bulk(arguments: dict) -> list:
                return [{"type": "text", "text": "ok"}]

            bulk.__qualname__ = f"bulk_{i:04d}"
            protected_by_AuthSec(name, description=f"Bulk tool {i}", inputSchema={"type": "object"})(bulk)
        names.append(name)
    return names


def plain_server(tool_names: list[str]) -> Server[Any]:
    tools = [registry.mcp_tool(name) for name in tool_names]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = registry.get(params.name)
        if tool is None:
            raise ValueError("unknown tool")
        content = await tool.run(tool.validate(dict(params.arguments or {})), {}, None)
        return types.CallToolResult.model_validate({"content": content, "isError": False})

    return Server("plain", on_list_tools=list_tools, on_call_tool=call_tool, get_tool_input_schema=lambda n: None)


class BenchRouter:
    def __init__(self) -> None:
        self.root = RootRouter()
        bulk = register_bulk_tools()
        self.plain = {
            "/plain/mcp": StreamableHTTPSessionManager(
                app=plain_server(["calculator"]), stateless=False, json_response=True
            ),
            "/plain1k/mcp": StreamableHTTPSessionManager(
                app=plain_server(["calculator", *bulk]), stateless=False, json_response=True
            ),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            async with contextlib.AsyncExitStack() as stack:
                for manager in self.plain.values():
                    await stack.enter_async_context(manager.run())
                await self.root(scope, receive, send)
            return
        manager = self.plain.get(scope.get("path", ""))
        if manager is not None:
            await manager.handle_request(scope, receive, send)
        else:
            await self.root(scope, receive, send)


if os.environ.get("BENCH_NO_AUDIT", "0") not in ("", "0"):  # experiment only: how much of the cost is the audit trail
    from audit.pipeline.queue import AuditQueue

    AuditQueue.put = lambda self, wire: None  # type: ignore[method-assign]

if os.environ.get("BENCH_NO_METRICS", "0") not in ("", "0"):  # experiment only: the metrics' share of the cost
    from authsec_site.lib import metrics

    metrics.tool_call = metrics.tools_listed = lambda *args: None  # type: ignore[assignment]

application = BenchRouter()
