"""Root ASGI app: routes ``/t/<tenant>/mcp/<app>`` to the MCP endpoint, ``/static/`` to static files, answers
``/livez`` itself and sends everything else to Django. It owns the lifespan, in which it runs the audit pipeline
(`audit.run_pipeline`) and, inside it, the MCP session managers (Django's ASGI handler does not accept lifespan
events). Run with ``uvicorn --lifespan on``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from authsec_site.lib import memtrace, tracing  # noqa: E402

memtrace.install()  # an allocation trace, only with AUTHSEC_TRACEMALLOC_DIR set (a diagnostic)
tracing.setup()  # OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set: before Django loads its middleware
django_app = get_asgi_application()

from starlette.staticfiles import StaticFiles  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

import audit  # noqa: E402
from authsec_site.lib import metrics  # noqa: E402
from mcp_endpoint.gate import MCP_PATH, McpEndpoint  # noqa: E402

logger = logging.getLogger(__name__)


_frozen = False
LIVEZ_PATH = "/livez"
_LIVEZ_BODY = b'{"status":"ok"}'


async def _livez(send: Send) -> None:
    """The load balancer's health check (deploy/haproxy.cfg): this node's process and event loop answer.

    It reads no backing service on purpose: Postgres, Redis and Vault are shared by every node, so a check that
    failed with them would take every node out at once and turn a partial outage (tools that need no Vault, JWT
    checks) into a full one. `/healthz` reports the backing services for monitoring."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_LIVEZ_BODY)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _LIVEZ_BODY})


def _freeze_startup_objects() -> None:
    """What start-up built (Django, the apps, the tool registry) lives as long as the process: move it out of
    the collector's reach, so a full collection walks only what requests create instead of pausing the event
    loop for the whole heap (≈ 150 ms here). Once per process (a test process runs several lifespans)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


class RootRouter:
    def __init__(self) -> None:
        self.mcp = McpEndpoint()
        self.mcp_handle = tracing.mcp_requests(self.mcp.handle)  # the handler itself when tracing is off
        self.static_prefix = settings.STATIC_URL
        self.collected_static = StaticFiles(directory=str(settings.STATIC_ROOT), check_dir=False)
        # Without collectstatic (development, tests) files come from the app directories through Django.
        self.found_static = ASGIStaticFilesHandler(django_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            # No websockets: refuse the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        path: str = scope["path"]
        match = MCP_PATH.match(path)
        if match:
            await self.mcp_handle(scope, receive, send, match["tenant"], match["app"])
        elif path == LIVEZ_PATH:
            await _livez(send)
        elif path.startswith(self.static_prefix):
            if settings.STATIC_ROOT.is_dir():
                await self.collected_static(dict(scope, path=path[len(self.static_prefix) - 1 :]), receive, send)
            else:
                await self.found_static(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(audit.run_pipeline())  # entered first: exits last, after the MCP
                await stack.enter_async_context(self.mcp.run())
                await stack.enter_async_context(metrics.flushing())  # tools/call counts → /metrics
                started = True
                _freeze_startup_objects()
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
            tracing.shutdown()  # export the spans still queued
            await send({"type": "lifespan.shutdown.complete"})
        except Exception as exc:
            logger.exception("ASGI lifespan failed")
            kind = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{kind}.failed", "message": f"{type(exc).__name__}: {exc}"})


application = RootRouter()
