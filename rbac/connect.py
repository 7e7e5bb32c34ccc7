""" "Connect a client" for one application: copy-paste setup per MCP client, and a server-side endpoint check.

The check only ever fetches this deployment's own URLs — the application's MCP endpoint, its RFC 9728 metadata and
the tenant's authorization-server metadata, all built from `settings.AUTHSEC_PUBLIC_URL` — through the SSRF-guarded
door (`authsec_site.lib.outbound`), with short timeouts. A URL an answer names (the challenge's
`resource_metadata`, the metadata's `authorization_servers`) is fetched only when it is the one expected, so the
dashboard can never be used as a proxy to anywhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from authsec_site.lib import outbound
from rbac.models import Application

TIMEOUT = 3.0  # seconds per request
MAX_BYTES = 64 * 1024
PROTOCOL_VERSION = "2025-06-18"
# MCP streamable HTTP: a POST must accept both answers.
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@dataclass(frozen=True)
class Urls:
    """The public URLs of one application's endpoint (the same as `oauth.issuer` builds, from the same setting)."""

    endpoint: str
    resource_metadata: str
    issuer: str
    as_metadata: str


def urls_for(tenant_slug: str, application: Application) -> Urls:
    base = settings.AUTHSEC_PUBLIC_URL
    return Urls(
        endpoint=f"{base}/t/{tenant_slug}/mcp/{application.slug}",
        resource_metadata=f"{base}/.well-known/oauth-protected-resource/t/{tenant_slug}/mcp/{application.slug}",
        issuer=f"{base}/t/{tenant_slug}/oauth",
        as_metadata=f"{base}/.well-known/oauth-authorization-server/t/{tenant_slug}/oauth",
    )


# --- Snippets ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    key: str
    client: str
    where: str
    text: str


def server_name(application: Application) -> str:
    """A name for the server entry in a client's configuration (the slug, which is already safe)."""
    return f"authsec-{application.slug}"


def snippets(urls: Urls, application: Application) -> list[Snippet]:
    """Copy-paste setup for each client, with this endpoint's URL filled in (rendered escaped by the template)."""
    name = server_name(application)
    url = urls.endpoint
    remote = {"mcpServers": {name: {"command": "npx", "args": ["-y", "mcp-remote", url]}}}
    vscode = {"servers": {name: {"type": "http", "url": url}}}
    cursor = {"mcpServers": {name: {"url": url}}}
    python = f'''import asyncio

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

URL = "{url}"


async def main() -> None:
    # Bearer mode: pass headers={{"Authorization": f"Bearer {{token}}"}} or an OAuthClientProvider as auth=...
    async with streamablehttp_client(URL) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            print([tool.name for tool in (await session.list_tools()).tools])


asyncio.run(main())
'''
    typescript = f'''import {{ Client }} from "@modelcontextprotocol/sdk/client/index.js";
import {{ StreamableHTTPClientTransport }} from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const transport = new StreamableHTTPClientTransport(new URL("{url}"));
// Bearer mode: new StreamableHTTPClientTransport(url, {{ authProvider }}) runs the OAuth flow.
const client = new Client({{ name: "my-client", version: "1.0.0" }});
await client.connect(transport);
console.log((await client.listTools()).tools.map((tool) => tool.name));
'''
    return [
        Snippet(
            "claude-desktop",
            "Claude Desktop",
            "claude_desktop_config.json (Settings → Developer → Edit Config); mcp-remote runs the OAuth flow",
            json.dumps(remote, indent=2),
        ),
        Snippet("claude-code", "Claude Code", "a terminal", f"claude mcp add --transport http {name} {url}"),
        Snippet("vscode", "VS Code", ".vscode/mcp.json in your workspace", json.dumps(vscode, indent=2)),
        Snippet("cursor", "Cursor", "~/.cursor/mcp.json", json.dumps(cursor, indent=2)),
        Snippet(
            "inspector",
            "MCP Inspector",
            "a terminal; then choose Streamable HTTP and this URL (the CLI form lists the tools)",
            f"npx @modelcontextprotocol/inspector\n"
            f"npx @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list",
        ),
        Snippet("python", "Python SDK (mcp)", "pip install mcp", python),
        Snippet("typescript", "TypeScript SDK", "npm install @modelcontextprotocol/sdk", typescript),
    ]


def mode_advice(application: Application) -> list[tuple[str, str]]:
    """(client family, which auth mode suits it) — docs/mcp.md "auth_mode" in short, for this application."""
    mode = application.get_auth_mode_display()
    return [
        (
            "Claude Code, VS Code, Cursor, MCP Inspector, mcp-remote (Claude Desktop)",
            "Standard MCP authorization: they start OAuth only on a 401, so use a 'bearer' application. At a "
            "'both' endpoint they see only the login tools and never get that 401.",
        ),
        (
            "Assistants that only call tools (no OAuth support)",
            "Login tools ('oauth_tools' or 'both'): the user calls oauth_start, signs in in a browser and the "
            "session is bound to the conversation.",
        ),
        (
            "Your own code (Python or TypeScript SDK)",
            "Either: send 'Authorization: Bearer <access token>' (any mode), or let the SDK's OAuth provider "
            "follow the 401 at a 'bearer' endpoint.",
        ),
        ("This application", f"is in mode: {mode}."),
    ]


# --- The endpoint check ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str


_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]*)"')


def _initialize_body() -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "authsec-dashboard-check", "version": "1"},
            },
        }
    ).encode()


def _post(url: str, headers: dict[str, str] | None = None) -> outbound.Response:
    return outbound.fetch(
        url,
        method="POST",
        content=_initialize_body(),
        headers={**MCP_HEADERS, **(headers or {})},
        timeout=TIMEOUT,
        max_bytes=MAX_BYTES,
    )


def _get_json(url: str) -> tuple[outbound.Response, Any]:
    response = outbound.fetch(url, headers={"Accept": "application/json"}, timeout=TIMEOUT, max_bytes=MAX_BYTES)
    try:
        return response, response.json()
    except ValueError:
        return response, None


def _server_info(response: outbound.Response) -> dict[str, Any] | None:
    """The initialize result's serverInfo, from a JSON or a one-event SSE answer."""
    text = response.body.decode("utf-8", "replace")
    if "json" not in response.headers.get("content-type", ""):
        text = "\n".join(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
    try:
        message = json.loads(text)
    except ValueError:
        return None
    result = message.get("result") if isinstance(message, dict) else None
    info = result.get("serverInfo") if isinstance(result, dict) else None
    return info if isinstance(info, dict) else None


def _disabled(step: str) -> Step:
    return Step(step, False, "The application is disabled: its endpoint answers 404. Activate it first.")


def check_endpoint(tenant_slug: str, application: Application) -> list[Step]:
    """Anonymous initialize, the 401 challenge, and RFC 9728 discovery against the endpoint's own public URL."""
    urls = urls_for(tenant_slug, application)
    steps: list[Step] = []

    # 1. Anonymous initialize: served in the login-tool modes, challenged in bearer mode.
    name = "Anonymous initialize"
    try:
        response = _post(urls.endpoint)
    except outbound.FetchError as exc:
        response = None
        steps.append(Step(name, False, f"{urls.endpoint} could not be reached: {exc.message}"))
    if response is not None:
        if response.status == 404:
            steps.append(_disabled(name) if not application.is_active else Step(name, False, "404: no such endpoint"))
        elif application.auth_mode == Application.AuthMode.BEARER:
            ok = response.status == 401
            steps.append(
                Step(
                    name,
                    ok,
                    "401, as bearer mode requires" if ok else f"expected 401 in bearer mode, got {response.status}",
                )
            )
        else:
            info = _server_info(response) if response.status == 200 else None
            if info is not None:
                steps.append(Step(name, True, f"200: server {info.get('name', '?')} {info.get('version', '')}".strip()))
            else:
                steps.append(Step(name, False, f"expected 200 with an initialize result, got {response.status}"))

    # 2. The 401 challenge: an invalid bearer token is refused with the RFC 9728 pointer in every mode.
    name = "401 challenge (WWW-Authenticate)"
    metadata_url = ""
    try:
        response = _post(urls.endpoint, {"Authorization": "Bearer not-a-token"})
    except outbound.FetchError as exc:
        response = None
        steps.append(Step(name, False, exc.message))
    if response is not None:
        header = response.headers.get("www-authenticate", "")
        found = _RESOURCE_METADATA.search(header)
        if response.status == 404 and not application.is_active:
            steps.append(_disabled(name))
        elif response.status != 401:
            steps.append(Step(name, False, f"expected 401 for an invalid token, got {response.status}"))
        elif found is None:
            steps.append(Step(name, False, "401 without resource_metadata in WWW-Authenticate"))
        elif found.group(1) != urls.resource_metadata:
            steps.append(Step(name, False, f"resource_metadata is {found.group(1)}, expected {urls.resource_metadata}"))
        else:
            metadata_url = found.group(1)
            steps.append(Step(name, True, f"401 with resource_metadata={metadata_url}"))

    # 3. RFC 9728: the protected-resource metadata names this endpoint and the tenant's authorization server.
    name = "Protected-resource metadata (RFC 9728)"
    issuer = ""
    if not metadata_url:
        steps.append(Step(name, False, "skipped: no resource_metadata URL from the challenge"))
    else:
        try:
            response, body = _get_json(metadata_url)
        except outbound.FetchError as exc:
            response, body = None, None
            steps.append(Step(name, False, exc.message))
        if response is not None:
            servers = body.get("authorization_servers") if isinstance(body, dict) else None
            if response.status != 200 or not isinstance(body, dict):
                steps.append(Step(name, False, f"expected 200 JSON, got {response.status}"))
            elif body.get("resource") != urls.endpoint:
                steps.append(Step(name, False, f"resource is {body.get('resource')!r}, expected {urls.endpoint}"))
            elif not isinstance(servers, list) or urls.issuer not in servers:
                steps.append(Step(name, False, f"authorization_servers does not name {urls.issuer}"))
            else:
                issuer = urls.issuer
                steps.append(Step(name, True, f"resource {urls.endpoint}; authorization server {issuer}"))

    # 4. RFC 8414: the authorization server's metadata, at the issuer's well-known URL.
    name = "Authorization-server metadata (RFC 8414)"
    if not issuer:
        steps.append(Step(name, False, "skipped: no authorization server from the resource metadata"))
    else:
        try:
            response, body = _get_json(urls.as_metadata)
        except outbound.FetchError as exc:
            response, body = None, None
            steps.append(Step(name, False, exc.message))
        if response is not None:
            if response.status != 200 or not isinstance(body, dict):
                steps.append(Step(name, False, f"expected 200 JSON, got {response.status}"))
            elif body.get("issuer") != issuer:
                steps.append(Step(name, False, f"issuer is {body.get('issuer')!r}, expected {issuer}"))
            elif not body.get("authorization_endpoint") or not body.get("token_endpoint"):
                steps.append(Step(name, False, "authorization_endpoint or token_endpoint missing"))
            else:
                steps.append(Step(name, True, f"issuer {issuer}; token endpoint {body['token_endpoint']}"))
    return steps
