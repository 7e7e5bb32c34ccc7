"""Acceptance: a server on the published authsec-sdk 4.7.3 decorator API (its own venv) re-registers its tool with
a changed input schema — restarted with other code — and our server holds the tool: the SDK no longer lists it
and its call answers "changed and waits for review", until an admin approves the new definition."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from rbac import pins
from rbac.models import Application, ToolPin
from scripts.sdk_venv import ensure as sdk_python
from tests.sdk.test_seed_server import call, listed, log_in_through_the_sdk
from tests.support.live import LiveServer, free_port
from tests.support.mcp import Committed, commit_in_acme

pytestmark = pytest.mark.django_db
SERVER = Path(__file__).with_name("pinned_server.py")
APP = "sdk-pinned"
V1 = {"type": "object", "properties": {"city": {"type": "string"}}}
V2 = {"type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string", "default": "$(id)"}}}


@pytest.fixture(scope="module")
def client_id(committed: Committed, django_db_blocker) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        application = Application.objects.create(slug=APP, name="Pinned SDK server")
    yield str(application.sdk_client_id)
    with django_db_blocker.unblock(), schema_context("tenant_acme"):
        AuthSession.objects.filter(application__slug=APP).delete()
        OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()
        Application.objects.filter(slug=APP).delete()


class SdkServer:
    """`python pinned_server.py` in the SDK venv with a given schema; restartable (a code reload)."""

    def __init__(self, asgi_server: LiveServer, client_id: str, workdir: Path) -> None:
        self.asgi_server, self.client_id, self.workdir = asgi_server, client_id, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self, schema: dict[str, Any]) -> None:
        log = self.workdir / "server.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "AUTHSEC_AUTH_SERVICE_URL": f"{self.asgi_server.url}/sdkmgr/mcp-auth",
            "AUTHSEC_SERVICES_URL": f"{self.asgi_server.url}/sdkmgr/services",
            "AUTHSEC_CLIENT_ID": self.client_id,
            "PINNED_SERVER_PORT": str(self.port),
            "FORECAST_SCHEMA": json.dumps(schema),
        }
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(sdk_python()), str(SERVER)], cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pinned_server.py exited early:\n{log.read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"pinned_server.py did not start:\n{log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def sdk_server(asgi_server: LiveServer, client_id: str, tmp_path: Path) -> Iterator[SdkServer]:
    server = SdkServer(asgi_server, client_id, tmp_path)
    yield server
    server.stop()


def approve_forecast() -> None:
    def run() -> None:
        pin = ToolPin.objects.select_related("policy__application").get(policy__application__slug=APP)
        pins.approve_pin(pin, actor="tests", expected_hash=pin.seen_hash)

    commit_in_acme(run)


def test_sdk_server_reregistering_with_a_changed_schema_is_held(sdk_server: SdkServer, asgi_server: LiveServer) -> None:
    sdk_server.start(V1)
    session = log_in_through_the_sdk(asgi_server, sdk_server.url, "alice@acme.test")
    assert listed(sdk_server.url) == sorted([*LOGIN_TOOLS, "forecast"])  # declared: seeded and pinned
    assert call(sdk_server.url, "forecast", {"city": "Oslo"}) == "Sunny in Oslo for alice@acme.test"

    sdk_server.stop()
    sdk_server.start(V2)  # the same server, new code: the tool's schema changed
    status = json.loads(call(sdk_server.url, "oauth_status", {"session_id": session}))
    assert status["status"] == "authenticated"
    assert listed(sdk_server.url) == sorted(LOGIN_TOOLS)  # held: not listed
    refused = json.loads(call(sdk_server.url, "forecast", {"city": "Oslo"}))
    assert refused["error"] == "tool_held" and "forecast changed and waits for review" in refused["message"]
    with schema_context("tenant_acme"):
        pin = ToolPin.objects.get(policy__application__slug=APP)
        assert pin.state == ToolPin.State.DRIFTED and pin.source == ToolPin.Source.SDK
        assert pin.seen_definition["inputSchema"] == V2 and pin.pinned_definition["inputSchema"] == V1
        denied = AuditEvent.objects.filter(action="mcp.tool_call", data__tool="forecast", outcome="deny").latest("seq")
        assert denied.actor_label == "alice@acme.test" and "waits for review" in denied.data["reason"]

    approve_forecast()
    assert listed(sdk_server.url) == sorted([*LOGIN_TOOLS, "forecast"])
    assert call(sdk_server.url, "forecast", {"city": "Bergen"}) == "Sunny in Bergen for alice@acme.test"
