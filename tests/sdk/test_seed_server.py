"""Acceptance: the seed's own server.py on the published authsec-sdk 4.7.3 (separate venv, mcp<2), pointed at
our live server by environment variables only, driven over HTTP JSON-RPC like an MCP client would."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from rbac.models import Application
from scripts.sdk_venv import ensure as sdk_python
from tests.support.live import LiveServer, free_port
from tests.support.mcp import Committed
from tests.support.mcp_login import browser_login

pytestmark = pytest.mark.django_db
SEED_SERVER = Path(__file__).with_name("seed_server.py")
SERVICE = "GitHub API Integration"
TOKEN = "ghp_sdk_acceptance_" + "x" * 20
ALICE_TOOLS = ["admin_panel", "create_resource", "github_with_audit", "hello"]
BOB_TOOLS = ["github_with_audit", "hello"]  # analyst: scope read, no admin role, no write


@dataclass
class World:
    demo_client_id: str
    other_client_id: str


@pytest.fixture(scope="module")
def world(committed: Committed, django_db_blocker) -> Iterator[World]:  # type: ignore[no-untyped-def]  # noqa: F811
    """acme's demo application (committed), a second application, and the demo GitHub service with a known token."""
    from services import services
    from services.demo import seed_services
    from services.models import Service

    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        demo = Application.objects.get(slug="demo")
        other = Application.objects.create(slug="sdk-other", name="Another SDK server")
        service = seed_services("acme")
        services.replace_secret(actor="tests", service=service, credentials={"access_token": TOKEN})
        ids = World(str(demo.sdk_client_id), str(other.sdk_client_id))
    yield ids
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        AuthSession.objects.all().delete()
        OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()
        Application.objects.filter(slug="sdk-other").delete()
        for leftover in Service.objects.filter(name=SERVICE):
            services.delete_service(actor="tests", service=leftover)


@pytest.fixture(scope="module")
def seed_server(world: World, asgi_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python server.py` in the SDK venv, configured only through the SDK's documented environment variables."""
    python = sdk_python()
    port = free_port()
    workdir = tmp_path_factory.mktemp("seed-server")  # no .authsec.json here: the environment decides
    log = workdir / "server.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "AUTHSEC_AUTH_SERVICE_URL": f"{asgi_server.url}/sdkmgr/mcp-auth",
        "AUTHSEC_SERVICES_URL": f"{asgi_server.url}/sdkmgr/services",
        "AUTHSEC_CLIENT_ID": world.demo_client_id,
        "SEED_SERVER_PORT": str(port),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(python), str(SEED_SERVER)], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server.py exited early:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"server.py did not start:\n{log.read_text()}")
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()  # the SDK answers SIGTERM with cleanup-sessions against our server
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


_ids = iter(range(1, 1_000_000))


def rpc(url: str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx2.post(
        url, json={"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def listed(url: str) -> list[str]:
    return sorted(tool["name"] for tool in rpc(url, "tools/list")["result"]["tools"])


def call(url: str, name: str, arguments: dict[str, Any] | None = None) -> str:
    """The text of the first content item of a tools/call result."""
    result = rpc(url, "tools/call", {"name": name, "arguments": arguments or {}})["result"]
    return result["content"][0]["text"]


def sign_in(server: LiveServer, authorization_url: str, email: str, user_code: str) -> None:
    """A user opening the authorization URL: form login at acme, consent, our callback, then the confirmation
    page where they type the user code the SDK passed through, and confirm."""
    page = browser_login(server, authorization_url, email, user_code=user_code)
    assert page.status_code == 200 and "You can return to your assistant" in page.text, page.text[:2000]


def log_in_through_the_sdk(server: LiveServer, url: str, email: str) -> str:
    started = json.loads(call(url, "oauth_start"))
    assert started["status"] == "pending" and started["authorization_url"].startswith(f"{server.url}/t/acme/oauth/")
    assert started["user_code"] in started["message"]  # the SDK passes the server's JSON through
    sign_in(server, started["authorization_url"], email, started["user_code"])
    status = json.loads(call(url, "oauth_status", {"session_id": started["session_id"]}))
    assert status == {"status": "authenticated", "email": email, "session_id": started["session_id"]}
    return started["session_id"]


def test_seed_server_works_against_our_server_unmodified(
    seed_server: str, asgi_server: LiveServer, world: World
) -> None:
    url = seed_server
    assert rpc(url, "initialize")["result"]["protocolVersion"] == "2024-11-05"

    # Before login: only the login tools, and a protected tool refuses.
    assert listed(url) == sorted(LOGIN_TOOLS)
    refused = json.loads(call(url, "hello"))
    assert refused["error"] == "unauthorized" and refused["tool"] == "hello"

    # oauth_start → sign in at the authorization URL → oauth_status authenticated → alice's tools.
    alice_session = log_in_through_the_sdk(asgi_server, url, "alice@acme.test")
    assert listed(url) == sorted([*LOGIN_TOOLS, *ALICE_TOOLS])
    assert call(url, "admin_panel") == "Admin panel accessed by alice@acme.test"
    assert call(url, "hello") == "Hello, alice@acme.test!"
    assert call(url, "create_resource", {"name": "Project Alpha"}) == "Resource 'Project Alpha' created successfully!"
    user_info = json.loads(call(url, "oauth_user_info", {"session_id": alice_session}))
    assert user_info["email"] == "alice@acme.test" and "admin" in user_info["roles"]

    # The service tool reads the Vault-held credential through ServiceAccessSDK → /sdkmgr/services/credentials.
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert call(url, "github_with_audit") == f"token sha256 {digest} for alice@acme.test"

    details = httpx2.post(
        f"{asgi_server.url}/sdkmgr/services/user-details",
        headers={"X-Client-ID": f"{world.demo_client_id}-main-client"},
        json={"session_id": alice_session, "service_name": SERVICE},
    ).json()
    assert details["email"] == "alice@acme.test" and details["service_name"] == SERVICE
    assert details["iss"] == f"{asgi_server.url}/t/acme/oauth" and TOKEN not in json.dumps(details)

    # A session of another client id (another application) is refused, though it is alice's.
    started = httpx2.post(
        f"{asgi_server.url}/sdkmgr/mcp-auth/start", json={"client_id": world.other_client_id, "app_name": "x"}
    ).json()
    assert started["user_code"] in started["message"]
    sign_in(asgi_server, started["authorization_url"], "alice@acme.test", started["user_code"])
    foreign = json.loads(call(url, "hello", {"session_id": started["session_id"]}))
    assert foreign["error"] == "unauthorized" and "session not found" in foreign["message"]
    assert json.loads(call(url, "oauth_status", {"session_id": started["session_id"]}))["status"] == "not_found"
    direct = httpx2.post(
        f"{asgi_server.url}/sdkmgr/services/credentials",
        headers={"X-Client-ID": f"{world.demo_client_id}-main-client"},
        json={"session_id": started["session_id"], "service_name": SERVICE},
    )
    assert direct.status_code == 401 and direct.json()["error"] == "unauthorized"

    # bob (analyst) sees a different set; admin_panel is refused by our server.
    log_in_through_the_sdk(asgi_server, url, "bob@acme.test")
    assert listed(url) == sorted([*LOGIN_TOOLS, *BOB_TOOLS])
    denied = json.loads(call(url, "admin_panel"))
    assert denied["error"] == "forbidden" and "admin" in denied["message"]
    assert call(url, "hello") == "Hello, bob@acme.test!"

    # Logging out through the SDK ends the shared auth session.
    ended = json.loads(call(url, "oauth_logout", {"session_id": alice_session}))
    assert ended["status"] == "logged_out"
    with schema_context("tenant_acme"):
        assert AuthSession.objects.get(pk=alice_session).status == AuthSession.Status.LOGGED_OUT
        calls = AuditEvent.objects.filter(action="mcp.tool_call", target_label="demo", data__via="sdk")
        assert calls.filter(actor_label="alice@acme.test", data__tool="admin_panel", outcome="allow").exists()
        assert calls.filter(actor_label="bob@acme.test", data__tool="admin_panel", outcome="deny").exists()
        reads = AuditEvent.objects.filter(action="service.read", actor_label="alice@acme.test", data__service=SERVICE)
        assert reads.filter(outcome="allow", data__tool="github_with_audit").exists()
        seeded = AuditEvent.objects.filter(action="sdkmgr.tools_declared", target_label="demo").first()
        assert seeded is not None and seeded.data["seeded"] == ["github_with_audit"]


def test_sdk_logins_get_the_confirmation_page_too(seed_server: str, asgi_server: LiveServer, world: World) -> None:
    """The CLI's /sdkmgr/mcp-auth/start and the SDK's oauth_start: a signed-in user opening the link does not bind
    the session; the CLI's status/{id} stays pending until a confirmation, and a decline stops its polling."""
    from tests.support.mcp_login import authorize, confirmation_page, submit
    from tests.support.mcp_login import sign_in as form_sign_in

    cli = httpx2.post(f"{asgi_server.url}/sdkmgr/mcp-auth/start", json={"client_id": world.demo_client_id}).json()
    assert cli["user_code"] in cli["message"] and cli["expires_in"] == 600
    cli_status = f"{asgi_server.url}/sdkmgr/mcp-auth/status/{cli['session_id']}"
    through_sdk = json.loads(call(seed_server, "oauth_start"))  # the SDK forwards our JSON unchanged
    assert through_sdk["user_code"] in through_sdk["message"]
    with httpx2.Client(base_url=asgi_server.url, follow_redirects=False, timeout=30) as http:
        form_sign_in(http, asgi_server, "bob@acme.test")
        cli_page = confirmation_page(http, asgi_server, authorize(http, asgi_server, cli["authorization_url"]))
        sdk_page = confirmation_page(http, asgi_server, authorize(http, asgi_server, through_sdk["authorization_url"]))
        assert httpx2.get(cli_status).json()["status"] == "pending"
        pending = json.loads(call(seed_server, "oauth_status", {"session_id": through_sdk["session_id"]}))
        assert pending["status"] == "pending"
        refused = json.loads(call(seed_server, "hello", {"session_id": through_sdk["session_id"]}))
        assert refused["error"] == "unauthorized"

        assert submit(http, cli_page, "", action="decline").status_code == 200
        declined = httpx2.get(cli_status).json()
        assert declined == {"status": "logged_out", "reason": "denied", "session_id": cli["session_id"]}
        assert submit(http, sdk_page, through_sdk["user_code"]).status_code == 200
    done = json.loads(call(seed_server, "oauth_status", {"session_id": through_sdk["session_id"]}))
    assert done["status"] == "authenticated" and done["email"] == "bob@acme.test"
