"""OpenTelemetry traces: the one module that sets them up (docs/observability.md, "Traces").

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, decided once when
this module is first imported (`ENABLED`). When off, nothing of the SDK is imported or set up, `traced` hands back
the function it decorates and `request_context` is the plain constructor: instrumented code runs exactly the
code it ran before, at no cost per call (docs/benchmarks.md). When on, `setup` installs a tracer provider
exporting OTLP/HTTP in batches (the standard ``OTEL_*`` variables configure exporter and batching), Django's
instrumentation serves the pages and APIs, and `mcp_requests` wraps the MCP endpoint in the ASGI
instrumentation, continuing the caller's trace from its ``traceparent`` header or, as the 2026-07-28 MCP
specification allows, from ``params._meta.traceparent`` of the JSON-RPC message.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from authsec_site.lib import jsonbody

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ENABLED = bool(
    any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
)
SERVICE_NAME = "authsec-server"  # unless OTEL_SERVICE_NAME says otherwise
TRACER_NAME = "authsec"

if ENABLED:
    from opentelemetry import trace

    _tracer = trace.get_tracer(TRACER_NAME)


def traced(
    name: str | Callable[..., str],
    *,
    attributes: Callable[..., dict[str, Any]] | None = None,
    result_attributes: Callable[[Any], dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Decorator: run the function (sync or async) in a span named `name`, or ``name(*args, **kwargs)``, with
    ``attributes(*args, **kwargs)`` and ``result_attributes(result)`` set on it (never pass a secret to either).
    An exception is recorded on the span and sets its status. With tracing off it returns the function itself."""

    def decorate(fn: F) -> F:
        if not ENABLED:
            return fn

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            span_name = name if isinstance(name, str) else name(*args, **kwargs)
            span_attributes = attributes(*args, **kwargs) if attributes else None
            return _tracer.start_as_current_span(span_name, attributes=span_attributes)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as span:
                    result = await fn(*args, **kwargs)
                    if result_attributes is not None:
                        span.set_attributes(result_attributes(result))
                    return result

            return traced_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def traced_sync(*args: Any, **kwargs: Any) -> Any:
            with start(args, kwargs) as span:
                result = fn(*args, **kwargs)
                if result_attributes is not None:
                    span.set_attributes(result_attributes(result))
                return result

        return traced_sync  # type: ignore[return-value]

    return decorate


def current_trace_id() -> str:
    """The trace id of the current span as 32 hex digits, or "" (tracing off, or no span)."""
    if not ENABLED:
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def with_trace_id(make: F) -> F:
    """`make` (a request context's constructor) when tracing is off; else a constructor that also records the
    current trace id (``trace_id=``), so audit events point at the trace of their request."""
    if not ENABLED:
        return make

    @functools.wraps(make)
    def make_traced(*args: Any, **kwargs: Any) -> Any:
        return make(*args, trace_id=current_trace_id(), **kwargs)

    return make_traced  # type: ignore[return-value]


# --- Set-up (the web process, from authsec_site.asgi) ---------------------------------------------------------

_provider: Any = None


def setup() -> None:
    """Install the tracer provider (OTLP/HTTP exporter, batched) and Django's instrumentation. Call once per
    process before Django loads its middleware; does nothing when tracing is off or already set up."""
    global _provider
    if not ENABLED or _provider is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    DjangoInstrumentor().instrument()
    logger.info("OpenTelemetry traces on: OTLP/HTTP export as service %s", resource.attributes.get("service.name"))


def shutdown() -> None:
    """Export what is still queued and stop the exporter (the ASGI lifespan's end)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


# --- The MCP endpoint's requests ------------------------------------------------------------------------------

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_META_KEYS = ("traceparent", "tracestate")

McpHandler = Callable[[Any, Any, Any, str, str], Awaitable[None]]


def mcp_requests(handle: McpHandler) -> McpHandler:
    """`handle` (the MCP endpoint's ``(scope, receive, send, tenant, app)``) when tracing is off; else the same
    in an HTTP server span of the ASGI instrumentation, named ``POST /t/{tenant}/mcp/{app}``.

    The span continues the caller's trace: from the ``traceparent`` header, else from the first
    ``params._meta.traceparent`` (and ``tracestate``) of the JSON-RPC body, which is read here for it and
    handed on unchanged. The MCP SDK's own span per message (``tools/call <tool>``) takes its parent from
    ``_meta`` too, or else from this span."""
    if not ENABLED:
        return handle
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await handle(scope, receive, send, scope["path_params"]["tenant"], scope["path_params"]["app"])

    def span_details(scope: Any) -> tuple[str, dict[str, Any]]:
        route = "/t/{tenant}/mcp/{app}"
        return f"{scope.get('method', 'HTTP')} {route}", {"http.route": route}

    instrumented = OpenTelemetryMiddleware(
        endpoint, default_span_details=span_details, exclude_spans=["receive", "send"]
    )

    async def traced_handle(scope: Any, receive: Any, send: Any, tenant: str, app: str) -> None:
        headers = scope.get("headers", [])
        if scope.get("method") == "POST" and not any(key == b"traceparent" for key, _ in headers):
            messages, body = await jsonbody.read_asgi_body(receive)
            receive = jsonbody.replay(messages, receive)
            headers = [*headers, *_meta_trace_headers(body)]
        await instrumented(dict(scope, headers=headers, path_params={"tenant": tenant, "app": app}), receive, send)

    return traced_handle


def _meta_trace_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """``traceparent``/``tracestate`` of the first JSON-RPC message's ``params._meta``, as header pairs (none when
    absent or malformed: the span then starts a new trace). A body over the limit fails to parse: none."""
    if b"traceparent" not in body:
        return []
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    message = payload[0] if isinstance(payload, list) and payload else payload
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("traceparent"), str):
        return []
    if not _TRACEPARENT.match(meta["traceparent"]):
        return []
    return [
        (key.encode(), meta[key].encode("latin-1", "replace"))
        for key in _META_KEYS
        if isinstance(meta.get(key), str) and len(meta[key]) <= 512
    ]
