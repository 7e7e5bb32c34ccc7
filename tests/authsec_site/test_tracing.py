"""OpenTelemetry traces (authsec_site/lib/tracing.py, docs/observability.md#traces), end to end: a live uvicorn with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a receiver in this test that speaks OTLP/HTTP and decodes what it gets
with `opentelemetry-proto`; calls from the real `mcp` client; the audit events the live server writes."""

from __future__ import annotations

import gzip
import importlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx2
import pytest
from django.test import Client as DjangoClient
from django.test.utils import override_settings
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from audit import context as audit_context
from audit.models import AuditEvent
from authsec_site.lib import tracing
from mcp_endpoint.gate import McpEndpoint
from mcp_endpoint.handlers import build_server
from rbac.grants import bump_version
from tests.services.test_list_my_repos import github, github_service  # noqa: F401 - module fixtures used below
from tests.support.live import LiveServer, uvicorn_server
from tests.support.mcp import Committed, commit_in_acme, get_token, text

pytestmark = pytest.mark.django_db
HTTP_SPAN = "POST /t/{tenant}/mcp/{app}"
SERVER, INTERNAL = 2, 1  # Span.SpanKind in the OTLP protobuf


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    service: str


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: every span of every export, decoded."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, found: Callable[[list[Span]], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                result = found(list(self.spans))
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"not exported in {timeout} s; spans: {sorted({s.name for s in self.spans})}")

    def trace(self, trace_id: str) -> Trace:
        with self.lock:
            return Trace([span for span in self.spans if span.trace_id == trace_id])


@dataclass(frozen=True)
class Trace:
    spans: list[Span]

    def one(self, name: str, parent: Span | str | None = None) -> Span:
        """The one span named `name` (under `parent`, a span or a span id, when given)."""
        parent_id = parent.span_id if isinstance(parent, Span) else parent
        found = [s for s in self.spans if s.name == name and parent_id in (None, s.parent_id)]
        assert len(found) == 1, f"{len(found)} spans {name!r} under {parent_id}:\n{self}"
        return found[0]

    def by_id(self, span_id: str) -> Span:
        return next(s for s in self.spans if s.span_id == span_id)

    def ancestors(self, span: Span) -> list[str]:
        by_id = {s.span_id: s for s in self.spans}
        names = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            names.append(span.name)
        return names

    def __str__(self) -> str:
        return "\n".join(f"{s.span_id} <- {s.parent_id or '(root)'}  {s.name}" for s in self.spans)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        service=resource.get("service.name", ""),
                    )
                )
    return spans


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(404)
                self.end_headers()
                return
            spans = _decode(body)
            with found.lock:
                found.spans.extend(spans)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def traced_server(django_db_setup, receiver: Receiver, tmp_path_factory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """A live server with tracing on, exporting to `receiver` every 100 ms."""
    log = tmp_path_factory.mktemp("traced") / "uvicorn.log"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "authsec-under-test",
        "OUTBOUND_ALLOW_LOOPBACK": "1",  # the stand-in for GitHub listens on 127.0.0.1
    }
    with uvicorn_server(log, **env) as server:
        yield server


@pytest.fixture(scope="module")
def alice_token(traced_server: LiveServer, committed: Committed) -> str:
    return get_token(traced_server, committed, "alice@acme.test")


def _endpoint(server: LiveServer) -> str:
    return f"{server.url}/t/acme/mcp/demo"


def _call(
    endpoint: str,
    token: str,
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
    before_call: Callable[[], None] | None = None,
) -> Any:
    """tools/call with the real client (after its handshake); `before_call` runs between the two."""

    async def main() -> Any:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **(headers or {})})
        async with http, Client(streamable_http_client(endpoint, http_client=http), cache=None) as client:
            if before_call is not None:
                await anyio.to_thread.run_sync(before_call)
            return await client.call_tool(name, arguments or {}, meta=meta)

    return anyio.run(main)


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _tool_call_event(tool: str, trace_id: str) -> AuditEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with schema_context("tenant_acme"):
            event = AuditEvent.objects.filter(action="mcp.tool_call", tool=tool, data__trace_id=trace_id).first()
        if event is not None:
            return event
        time.sleep(0.2)
    with schema_context("tenant_acme"):
        seen = list(AuditEvent.objects.filter(tool=tool).order_by("-seq").values_list("action", "data")[:5])
    raise AssertionError(f"no mcp.tool_call event of {tool} with trace id {trace_id}: {seen}")


def _trace_of(receiver: Receiver, span_name: str, trace_id: str | None = None) -> Trace:
    """The trace holding `span_name` (in trace `trace_id` when given), once its HTTP span is exported too."""

    def find(spans: list[Span]) -> str | None:
        for span in spans:
            wanted = span.name == span_name and trace_id in (None, span.trace_id)
            if wanted and any(s.name == HTTP_SPAN and s.trace_id == span.trace_id for s in spans):
                return span.trace_id
        return None

    return receiver.trace(receiver.wait_for(find))


def test_a_tool_call_is_one_trace_with_token_check_grants_decision_tool_vault_and_audit(
    traced_server: LiveServer,
    receiver: Receiver,
    alice_token: str,
    github_service: int,  # noqa: F811 - the fixture imported above
) -> None:
    # An RBAC change between the handshake and the call: the call reads alice's grants again (a grants span).
    result = _call(
        _endpoint(traced_server),
        alice_token,
        "list_my_repos",
        before_call=lambda: commit_in_acme(bump_version),
    )
    assert not result.is_error and "acme-corp/repo-0" in text(result)

    trace = _trace_of(receiver, "tools/call list_my_repos")
    http = trace.one(HTTP_SPAN)
    assert http.kind == SERVER and http.parent_id == ""  # no incoming context: a new trace
    assert http.service == "authsec-under-test"
    assert http.attributes["http.route"] == "/t/{tenant}/mcp/{app}"
    # The gate, under the HTTP span: the token check on the event loop, then (the grants changed) in a thread.
    check = trace.one("authsec.token_check", parent=http)
    assert check.attributes == {"authsec.tenant": "acme", "authsec.application": "demo"}
    load = trace.one("authsec.token_check.load", parent=http)
    grants = trace.one("authsec.grants", parent=load)
    trace.one("authsec.grants.load", parent=grants)
    # The MCP SDK's span of the message, then the handler's work under it.
    call = trace.one("tools/call list_my_repos", parent=http)
    assert call.kind == SERVER and call.attributes["mcp.method.name"] == "tools/call"
    decision = trace.one("authsec.decision", parent=call)
    assert decision.attributes["authsec.allowed"] is True
    tool = trace.one("execute_tool list_my_repos", parent=call)
    assert tool.attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "list_my_repos"}
    # Inside the tool, ServiceAccessSDK decides again (on the service's requirement) and reads Vault.
    trace.one("authsec.decision", parent=tool)
    assert "execute_tool list_my_repos" in trace.ancestors(trace.one("vault read a secret"))
    trace.one("audit.enqueue", parent=call)
    assert {span.trace_id for span in trace.spans} == {http.trace_id}
    # The audit event of the call names its trace.
    assert _tool_call_event("list_my_repos", http.trace_id).trace_id == http.trace_id


def test_continues_the_trace_of_a_traceparent_header(
    traced_server: LiveServer, receiver: Receiver, alice_token: str
) -> None:
    trace_id, parent_id, traceparent = _traceparent()
    result = _call(
        _endpoint(traced_server),
        alice_token,
        "calculator",
        {"operation": "add", "a": 2, "b": 3},
        headers={"traceparent": traceparent},
    )
    assert text(result) == "5"

    trace = _trace_of(receiver, "tools/call calculator", trace_id)
    # The client's three requests (server/discover, tools/list, tools/call) all continue the header's span.
    call = trace.one("tools/call calculator")
    http = trace.by_id(call.parent_id)
    assert http.name == HTTP_SPAN and http.parent_id == parent_id
    trace.one("authsec.token_check", parent=http)
    trace.one("authsec.decision", parent=call)
    trace.one("execute_tool calculator", parent=call)
    trace.one("audit.enqueue", parent=call)
    assert _tool_call_event("calculator", trace_id).data["trace_id"] == trace_id


def test_continues_the_trace_of_meta_traceparent(
    traced_server: LiveServer, receiver: Receiver, alice_token: str
) -> None:
    """The 2026-07-28 specification reserves `traceparent` in a request's `_meta` for this."""
    trace_id, parent_id, traceparent = _traceparent()
    result = _call(
        _endpoint(traced_server),
        alice_token,
        "calculator",
        {"operation": "multiply", "a": 2, "b": 3},
        meta={"traceparent": traceparent},
    )
    assert text(result) == "6"

    trace = _trace_of(receiver, "tools/call calculator", trace_id)
    # Both the HTTP span and the SDK's span of the message continue the caller's span.
    http = trace.one(HTTP_SPAN, parent=parent_id)
    call = trace.one("tools/call calculator", parent=parent_id)
    trace.one("authsec.token_check", parent=http)
    trace.one("authsec.decision", parent=call)
    trace.one("execute_tool calculator", parent=call)
    trace.one("audit.enqueue", parent=call)
    assert _tool_call_event("calculator", trace_id).data["trace_id"] == trace_id


def test_a_malformed_meta_traceparent_starts_a_new_trace(
    traced_server: LiveServer, receiver: Receiver, alice_token: str
) -> None:
    trace_id = secrets.token_hex(16)
    with receiver.lock:
        before = {span.trace_id for span in receiver.spans if span.name == "tools/call calculator"}
    result = _call(
        _endpoint(traced_server),
        alice_token,
        "calculator",
        {"operation": "subtract", "a": 2, "b": 3},
        meta={"traceparent": f"00-{trace_id}-not-a-span-01"},
    )
    assert text(result) == "-1"

    new = receiver.wait_for(
        lambda spans: {s.trace_id for s in spans if s.name == "tools/call calculator"} - before
        if any(s.name == HTTP_SPAN and s.trace_id not in before for s in spans)
        else None
    )
    (new_trace,) = new
    trace = _trace_of(receiver, "tools/call calculator", new_trace)
    assert new_trace != trace_id
    trace.one("tools/call calculator", parent=trace.one(HTTP_SPAN, parent=""))


def test_django_pages_are_traced_and_their_audit_events_carry_the_trace(
    traced_server: LiveServer, receiver: Receiver, committed: Committed
) -> None:
    """A Django request (here the login page, a failed sign-in: audited) continues the header's trace too."""
    trace_id, parent_id, traceparent = _traceparent()
    with httpx2.Client(base_url=traced_server.url, headers={"traceparent": traceparent}, timeout=30) as http:
        page = http.get("/t/acme/accounts/login/")
        assert page.status_code == 200
    found = receiver.wait_for(lambda spans: [s for s in spans if s.trace_id == trace_id and s.kind == SERVER])
    assert found[0].parent_id == parent_id and found[0].attributes.get("http.route") is not None


def test_the_admin_and_review_pages_link_an_event_to_its_trace(
    traced_server: LiveServer, receiver: Receiver, alice_token: str, request: pytest.FixtureRequest
) -> None:
    trace_id, _, traceparent = _traceparent()
    result = _call(_endpoint(traced_server), alice_token, "hello", headers={"traceparent": traceparent})
    assert not result.is_error, result
    event = _tool_call_event("hello", trace_id)
    # Only now: signing in audits inside this test's transaction, which holds acme's chain lock until it ends
    # (the live server's audit writer would wait for it: docs/audit.md).
    admin: DjangoClient = request.getfixturevalue("admin")
    with override_settings(AUDIT_TRACE_URL="https://traces.example.com/trace/{trace_id}"):
        change = admin.get(f"/t/acme/admin/audit/auditevent/{event.pk}/change/")
        review = admin.get(f"/t/acme/audit/events/{event.pk}/")
    link = f'href="https://traces.example.com/trace/{trace_id}"'
    assert change.status_code == 200 and link in change.content.decode()
    assert review.status_code == 200 and link in review.content.decode()


# --- Off (this test process: no OTEL_EXPORTER_OTLP_ENDPOINT): nothing wraps anything ---------------------------


def test_tracing_off_leaves_every_instrumented_function_as_it_was() -> None:
    from audit.pipeline import queue
    from mcp_endpoint import bearer
    from mcp_endpoint.registry import RegisteredTool
    from rbac import grants, principal

    vault_client = importlib.import_module("authsec_site.lib.vault.client")  # the package re-exports `client()`
    assert not tracing.ENABLED

    def plain() -> None:
        return None

    assert tracing.traced("x")(plain) is plain
    handle = McpEndpoint.handle
    assert tracing.mcp_requests(handle) is handle
    assert audit_context.new_context is audit_context.RequestContext
    for fn in (
        queue.enqueue,
        vault_client._guard,  # noqa: SLF001
        bearer.resolve,
        bearer.resolve_cached,
        grants.grants_for_user_id,
        grants.load_grants,
        principal.authorize,
        principal.visible,
        RegisteredTool.run,
    ):
        assert not hasattr(fn, "__wrapped__"), fn
    assert tracing.current_trace_id() == ""
    # Nor does the MCP SDK's span per message run (a no-op tracer's span still cost ≈ 90,000 instructions a call).
    assert [type(m).__module__ for m in build_server().middleware if type(m).__module__ == "mcp.server._otel"] == []


@pytest.mark.parametrize(
    ("meta", "headers"),
    [
        ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, 1),
        ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=v"}, 2),
        ({"traceparent": "00-" + "A" * 32 + "-" + "b" * 16 + "-01"}, 0),  # upper case is not W3C
        ({"traceparent": "garbage"}, 0),
        ({"traceparent": 7}, 0),
        ({}, 0),
    ],
)
def test_reads_trace_context_from_meta_only_when_well_formed(meta: dict[str, Any], headers: int) -> None:
    import json

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "_meta": meta}})
    found = tracing._meta_trace_headers(body.encode())  # noqa: SLF001
    assert len(found) == headers
    if headers:
        assert found[0] == (b"traceparent", meta["traceparent"].encode())
