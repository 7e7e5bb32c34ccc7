"""The root ASGI app under uvicorn: MCP path → MCP endpoint (real `mcp` client), the rest → Django."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx2
import pytest
from mcp import Client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from tests.support.live import LiveServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_app")]


@pytest.fixture(scope="module")
def demo_app(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Application ``demo`` in acme, committed (the live server only sees committed data)."""
    from django_tenants.utils import schema_context

    from rbac.models import Application

    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        _, created = Application.objects.get_or_create(slug="demo", defaults={"name": "Demo tools"})
    yield
    if created:
        with django_db_blocker.unblock(), schema_context("tenant_acme"):
            Application.objects.filter(slug="demo").delete()


def test_modern_mcp_client_connects_and_anonymous_sees_only_the_login_tools(asgi_server: LiveServer) -> None:
    async def main() -> tuple[str, list[str]]:
        async with Client(f"{asgi_server.url}/t/acme/mcp/demo") as client:
            tools = await client.list_tools()
            return client.protocol_version, [tool.name for tool in tools.tools]

    version, tools = anyio.run(main)
    assert version == "2026-07-28"
    # anonymous: no protected tool is listed, only the seed's five login tools
    assert tools == ["oauth_authenticate", "oauth_logout", "oauth_start", "oauth_status", "oauth_user_info"]


def test_livez_answers_from_the_router_whatever_the_host(asgi_server: LiveServer) -> None:
    """The load balancer's check (deploy/haproxy.cfg): answered before Django, so no Host check and no backing
    service read; /healthz, a Django view, refuses a Host it does not serve."""
    live = httpx2.get(f"{asgi_server.url}/livez", headers={"Host": "node-7.internal:8000"})
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert live.headers["cache-control"] == "no-store"
    assert httpx2.get(f"{asgi_server.url}/healthz", headers={"Host": "node-7.internal:8000"}).status_code == 400


def test_handshake_era_mcp_client_pings(asgi_server: LiveServer) -> None:
    async def main() -> str:
        async with Client(f"{asgi_server.url}/t/acme/mcp/demo", mode="legacy") as client:
            await client.send_ping()
            return client.protocol_version

    assert anyio.run(main) in HANDSHAKE_PROTOCOL_VERSIONS


def test_initialize_and_ping_with_protocol_2025_06_18(asgi_server: LiveServer) -> None:
    url = f"{asgi_server.url}/t/acme/mcp/demo"
    headers = {"Accept": "application/json, text/event-stream"}
    init = httpx2.post(
        url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    assert init.status_code == 200
    assert init.json()["result"]["protocolVersion"] == "2025-06-18"
    session = init.headers["mcp-session-id"]  # handshake-era protocols keep a session
    ping = httpx2.post(
        url,
        headers={**headers, "MCP-Protocol-Version": "2025-06-18", "Mcp-Session-Id": session},
        json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
    )
    assert ping.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}
    # Without the session id a handshake-era request other than initialize is refused.
    orphan = httpx2.post(
        url,
        headers={**headers, "MCP-Protocol-Version": "2025-06-18"},
        json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
    )
    assert orphan.status_code == 400


@pytest.mark.parametrize("path", ["/t/nosuchtenant/mcp/demo", "/t/public/mcp/demo", "/t/acme/mcp/nosuchapp"])
def test_mcp_on_unknown_tenant_or_application_is_404(asgi_server: LiveServer, path: str) -> None:
    response = httpx2.post(
        asgi_server.url + path,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_mcp_path_has_no_trailing_slash_variant(asgi_server: LiveServer) -> None:
    response = httpx2.post(asgi_server.url + "/t/acme/mcp/demo/", json={})
    assert response.status_code == 404  # Django answers, no redirect to the MCP URL


def test_dns_rebinding_protection_refuses_foreign_hosts(asgi_server: LiveServer) -> None:
    response = httpx2.post(
        asgi_server.url + "/t/acme/mcp/demo",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Host": "evil.example", "Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 421


def test_django_pages_and_static_files_are_served(asgi_server: LiveServer) -> None:
    assert httpx2.get(asgi_server.url + "/t/acme/admin/login/").status_code == 200
    css = httpx2.get(asgi_server.url + "/static/admin/css/base.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]
    assert httpx2.get(asgi_server.url + "/t/nosuchtenant/admin/").status_code == 404


def test_health_endpoint_reports_all_services(asgi_server: LiveServer) -> None:
    body = httpx2.get(asgi_server.url + "/healthz").json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "vault": "ok"}
    # The worker's last health check is reported too (tests/authsec_site/test_celery.py checks its values).
    assert set(body["worker"]) == {"last_health_check", "age_seconds", "result"}
