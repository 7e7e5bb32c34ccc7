"""Issue 18 finding 6 at the hosted MCP endpoint, over real HTTP (uvicorn, the real ASGI app): a hostile body
gets a JSON-RPC error with HTTP 400 — never a 500 — for anonymous callers (whose bodies the endpoint itself
reads to find the tools called) and for callers with a token (whose bodies only the SDK parses)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest
from django.conf import settings

from audit.models import AuditEvent
from tests.support.live import LiveServer
from tests.support.mcp import JSON_RPC, MODERN, Committed, url

pytestmark = pytest.mark.django_db
DEPTH = 10_000
PARSE_ERROR, INVALID_REQUEST = -32700, -32600
# The stateless 2026-07-28 protocol: a well-formed request is answered without a session, so each case below
# would be served (or fail inside) if the endpoint let it through.
HEADERS = {
    **JSON_RPC,
    "MCP-Protocol-Version": MODERN,
    "Mcp-Method": "tools/call",
    "Mcp-Name": "oauth_start",
    "Content-Type": "application/json",
}
META = json.dumps(
    {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "authsec-tests", "version": "1"},
    }
).encode()


def _call(arguments: bytes) -> bytes:
    """A tools/call of the login tool `oauth_start` (callable anonymously) with raw JSON `arguments`."""
    return (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "oauth_start", "_meta": %s, '
        b'"arguments": %s}}' % (META, arguments)
    )


CASES: dict[str, tuple[Callable[[], bytes], int]] = {
    "depth-whole-request": (lambda: b"[" * DEPTH + b"]" * DEPTH, INVALID_REQUEST),
    "depth-object-request": (lambda: b'{"a": ' * DEPTH + b"1" + b"}" * DEPTH, INVALID_REQUEST),
    "depth-in-tool-arguments": (lambda: _call(b'{"a": ' * DEPTH + b"1" + b"}" * DEPTH), INVALID_REQUEST),
    "keys-in-tool-arguments": (
        lambda: _call(json.dumps({f"k{n}": n for n in range(settings.JSON_MAX_KEYS + 1)}).encode()),
        INVALID_REQUEST,
    ),
    "size": (lambda: _call(json.dumps({"pad": "x" * (settings.JSON_MAX_BYTES + 1)}).encode()), INVALID_REQUEST),
    "invalid-utf8": (lambda: _call(b'{"pad": "\xff\xfe"}'), PARSE_ERROR),
    "syntax": (lambda: b'{"jsonrpc": "2.0", "id": 1, "method": ', PARSE_ERROR),
    "not-an-object": (lambda: b'"tools/list"', INVALID_REQUEST),
}


def _rpc_error(response: httpx2.Response, code: int) -> None:
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == code, body
    if code == INVALID_REQUEST:  # refused by the endpoint's own check, which names the limit or the shape
        assert (
            body["error"]["message"].startswith("Invalid request: The JSON body")
            or "JSON-RPC" in body["error"]["message"]
        ), body
    assert "Traceback" not in response.text


@pytest.mark.parametrize("case", CASES)
def test_anonymous_hostile_json_is_a_json_rpc_error(case: str, asgi_server: LiveServer, committed: Committed) -> None:
    body, code = CASES[case]
    before = AuditEvent.objects.filter(action="mcp.tool_call").count()
    _rpc_error(httpx2.post(url(asgi_server), content=body(), headers=HEADERS, timeout=60), code)
    assert AuditEvent.objects.filter(action="mcp.tool_call").count() == before


@pytest.mark.parametrize("case", ["depth-whole-request", "depth-in-tool-arguments", "keys-in-tool-arguments", "size"])
def test_hostile_json_with_a_token_is_a_json_rpc_error(
    case: str, asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    body, code = CASES[case]
    headers = {**HEADERS, "Authorization": f"Bearer {tokens('alice@acme.test')}"}
    _rpc_error(httpx2.post(url(asgi_server), content=body(), headers=headers, timeout=60), code)


def _modern_at(server: LiveServer, content_type: str) -> httpx2.Response:
    """A valid tools/list of the stateless 2026-07-28 protocol (as `modern_rpc` sends it) with `content_type`."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "authsec-tests", "version": "1"},
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": meta}})
    headers = {**JSON_RPC, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list", "Content-Type": content_type}
    return httpx2.post(url(server), content=body, headers=headers, timeout=30)


def test_wrong_content_type_is_refused(asgi_server: LiveServer, committed: Committed) -> None:
    response = _modern_at(asgi_server, "text/plain")
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == INVALID_REQUEST


def test_a_normal_request_still_passes(asgi_server: LiveServer, committed: Committed) -> None:
    response = _modern_at(asgi_server, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == 7 and "tools" in response.json()["result"]
    # A login-tool call of the same shape as the hostile cases, within the limits, is served.
    call = httpx2.post(url(asgi_server), content=_call(b'{"pad": [[["x"]]]}'), headers=HEADERS, timeout=30)
    assert call.status_code == 200, call.text
    assert call.json()["id"] == 1 and "result" in call.json()
