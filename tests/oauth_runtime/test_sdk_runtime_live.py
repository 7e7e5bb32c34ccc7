"""Acceptance: the published `authsec-sdk` 4.7.3 runtime API (`mount_mcp` + `HybridValidator`, validation
`jwt_and_introspect`, policy `remote_required`, manifest published) protects an MCP server run in its own
virtualenv, pointed at our live server by the SDK's AUTHSEC_* variables only. Real tokens come from our AS
(client credentials with `resource=`), the tool mapping is set by posting the dashboard's admin form, and
the SDK enforces it: allowed, 403 (insufficient_scope), 401 without a token, 401 once revoked, 503 before
any mapping, and a changed mapping is enforced after the SDK's policy cache expires."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from oauth import resource_servers as rs
from oauth.models import Client, ResourceServer
from rbac.models import Scope
from scripts.sdk_venv import ensure as sdk_python
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import AdminForm
from tests.support.live import ROOT, LiveServer, free_port

pytestmark = pytest.mark.django_db
SCHEMA = "tenant_acme"
POLICY_TTL = 2  # seconds; the SDK's default is 30 (Config.scope_matrix_ttl)
SERVER_SCRIPT = Path(__file__).with_name("sdk_runtime_server.py")


@dataclass
class RuntimeServer:
    url: str  # the MCP endpoint = resource URI
    issuer: str
    server_id: str
    machine_id: str
    machine_secret: str
    log: Path
    proc: subprocess.Popen


def _db(blocker: Any, fn: Callable[[], Any]) -> Any:
    with blocker.unblock(), schema_context(SCHEMA):
        return fn()


@pytest.fixture(scope="module")
def runtime(asgi_server: LiveServer, django_db_blocker, tmp_path_factory) -> Iterator[RuntimeServer]:  # type: ignore[no-untyped-def]
    """A registered resource server and a machine client in acme (committed), and the SDK's server running."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    issuer = f"{asgi_server.url}/t/acme/oauth"
    machine_secret = secrets.token_urlsafe(32)

    def setup() -> tuple[ResourceServer, str, Client, list[str]]:
        created = [name for name in ("read", "write") if not Scope.objects.filter(name=name).exists()]
        scopes = [Scope.objects.get_or_create(name=name)[0] for name in ("read", "write")]
        server, secret = rs.create_resource_server(actor="tests", name="Notes", resource_uri=resource, scopes=scopes)
        machine = Client.objects.create(
            name=f"SDK runtime test agent {port}",
            client_type=Client.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
            client_secret=machine_secret,
        )
        return server, secret, machine, created

    server, secret, machine, created_scopes = _db(django_db_blocker, setup)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("sdk-home")),
        "AUTHSEC_ISSUER": issuer,
        "AUTHSEC_AUTHORIZATION_SERVER": issuer,
        "AUTHSEC_JWKS_URL": f"{issuer}/jwks",
        "AUTHSEC_INTROSPECTION_URL": f"{issuer}/introspect",
        "AUTHSEC_INTROSPECTION_CLIENT_ID": server.client.client_id,
        "AUTHSEC_INTROSPECTION_CLIENT_SECRET": secret,
        "AUTHSEC_RESOURCE_SERVER_ID": str(server.pk),
        "AUTHSEC_RESOURCE_URI": resource,
        "AUTHSEC_RESOURCE_NAME": "Notes",
        "AUTHSEC_POLICY_MODE": "remote_required",
        "AUTHSEC_VALIDATION_MODE": "jwt_and_introspect",
        "AUTHSEC_PUBLISH_MANIFEST": "true",
        "SDK_TEST_PORT": str(port),
        "SDK_TEST_POLICY_TTL": str(POLICY_TTL),
    }
    log = tmp_path_factory.mktemp("sdk-runtime") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(sdk_python()), str(SERVER_SCRIPT)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    runtime = RuntimeServer(resource, issuer, str(server.pk), machine.client_id, machine_secret, log, proc)
    try:
        # The SDK pushes its manifest in the background at startup: wait until the dashboard has the tools.
        deadline = time.monotonic() + 60
        while _db(django_db_blocker, lambda: server.tools.count()) < 3:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"The SDK server did not publish its manifest:\n{log.read_text()}")
            time.sleep(0.2)
        yield runtime
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

        def teardown() -> None:
            fresh = ResourceServer.objects.select_related("client").get(pk=server.pk)
            rs.delete_resource_server(actor="tests", server=fresh)
            Client.objects.filter(pk=machine.pk).delete()
            Scope.objects.filter(name__in=created_scopes).delete()

        _db(django_db_blocker, teardown)


# --- Helpers: our AS, our dashboard, the SDK's MCP endpoint ---------------------------------------------------------


def _token(runtime: RuntimeServer, scope: str) -> str:
    response = httpx2.post(
        f"{runtime.issuer}/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": runtime.url},
        auth=(runtime.machine_id, runtime.machine_secret),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _revoke(runtime: RuntimeServer, token: str) -> None:
    response = httpx2.post(
        f"{runtime.issuer}/revoke", data={"token": token}, auth=(runtime.machine_id, runtime.machine_secret), timeout=30
    )
    assert response.status_code == 200, response.text


def _rpc(runtime: RuntimeServer, token: str | None, method: str, params: dict[str, Any]) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx2.post(runtime.url, json=body, headers=headers, timeout=30)


def _call(runtime: RuntimeServer, token: str | None, tool: str, **arguments: Any) -> httpx2.Response:
    return _rpc(runtime, token, "tools/call", {"name": tool, "arguments": arguments})


def _allowed(response: httpx2.Response) -> bool:
    return response.status_code == 200 and not response.json()["result"].get("isError")


def _denial(response: httpx2.Response) -> dict[str, Any]:
    """The SDK's in-band denial of a tools/call (HTTP 200, `isError`, `_meta.authsec`)."""
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["isError"] is True, result
    return result["_meta"]["authsec"]


def _wait_until(check: Callable[[], bool], what: str, runtime: RuntimeServer, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting until {what}:\n{runtime.log.read_text()[-4000:]}")
        time.sleep(0.5)


class Dashboard:
    """The tenant admin, signed in over HTTP on the live server."""

    def __init__(self, server: LiveServer) -> None:
        self.http = httpx2.Client(base_url=server.url, follow_redirects=False, timeout=30)
        page = self.http.get("/t/acme/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None, page.text[:2000]
        login = self.http.post(
            "/t/acme/accounts/login/",
            data={"csrfmiddlewaretoken": token.group(1), "username": "admin@acme.test", "password": ADMIN_PASSWORD},
        )
        assert login.status_code == 302, login.text[:2000]

    def page(self, server_id: str) -> str:
        response = self.http.get(f"/t/acme/admin/oauth/resourceserver/{server_id}/change/")
        assert response.status_code == 200, response.text[:2000]
        return response.text

    def map_tools(self, server_id: str, mapping: dict[str, list[str] | str]) -> None:
        """`{tool: [scope labels]}` or `{tool: "public"}`, posted through the change form."""
        url = f"/t/acme/admin/oauth/resourceserver/{server_id}/change/"
        form = AdminForm(self.page(server_id))
        for tool, scopes in mapping.items():
            row = form.row_prefix("tools", tool)
            form.check(f"{row}-is_public", scopes == "public")
            form.choose(f"{row}-required_scopes", *([] if scopes == "public" else scopes))
        response = self.http.post(url, data=form.data(), headers={"Referer": str(self.http.base_url) + url})
        assert response.status_code == 302, response.text[-3000:]


# --- The acceptance scenario ----------------------------------------------------------------------------------------


def test_sdk_runtime_enforces_the_policy_set_in_our_dashboard(
    runtime: RuntimeServer, asgi_server: LiveServer, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    dashboard = Dashboard(asgi_server)
    page = dashboard.page(runtime.server_id)
    for tool in ("read_notes", "write_note", "hello"):
        assert tool in page  # the pushed inventory is in the dashboard

    read = _token(runtime, "read")
    write = _token(runtime, "write")

    # Before an admin maps anything the policy is incomplete: the SDK denies every tool (503).
    before = _call(runtime, read, "read_notes")
    assert before.status_code == 503, before.text
    assert before.json()["error"] == "policy_unavailable"

    dashboard.map_tools(runtime.server_id, {"read_notes": ["read"], "write_note": ["write"], "hello": "public"})
    # The SDK retries an incomplete policy after 10 s (its fixed back-off), then serves the mapping.
    _wait_until(lambda: _allowed(_call(runtime, read, "read_notes")), "the SDK serves the mapping", runtime)

    ok = _call(runtime, read, "read_notes").json()["result"]
    assert ok["content"][0]["text"] == f"notes for {runtime.machine_id}: buy milk"
    denied = _denial(_call(runtime, read, "write_note", text="hi"))
    assert (denied["status"], denied["error"], denied["required_scopes"]) == (403, "insufficient_scope", ["write"])
    assert _allowed(_call(runtime, write, "write_note", text="hi"))
    assert _denial(_call(runtime, write, "read_notes"))["status"] == 403
    assert _allowed(_call(runtime, read, "hello")) and _allowed(_call(runtime, write, "hello"))

    listed = _rpc(runtime, read, "tools/list", {})
    assert listed.status_code == 200, listed.text
    assert sorted(tool["name"] for tool in listed.json()["result"]["tools"]) == ["hello", "read_notes"]

    # No token at all: HTTP 401 with the RFC 9728 challenge.
    anonymous = _call(runtime, None, "hello")
    assert anonymous.status_code == 401
    challenge = anonymous.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge

    # A token revoked at our AS: the next introspection says inactive.
    _revoke(runtime, read)
    revoked = _denial(_call(runtime, read, "read_notes"))
    assert (revoked["status"], revoked["reason"]) == (401, "token_revoked")
    plain = httpx2.get(runtime.url, headers={"Authorization": f"Bearer {read}"}, timeout=30)
    assert plain.status_code == 401 and plain.json()["reason"] == "token_revoked"

    # A token our AS issued for another audience is refused too.
    other = httpx2.post(
        f"{runtime.issuer}/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(runtime.machine_id, runtime.machine_secret),
        timeout=30,
    ).json()["access_token"]
    assert _denial(_call(runtime, other, "read_notes"))["status"] == 401

    # The admin changes the mapping: once the SDK's cache expires, the new policy is enforced.
    generation = _db(django_db_blocker, lambda: ResourceServer.objects.get(pk=runtime.server_id).generation)
    dashboard.map_tools(runtime.server_id, {"write_note": ["read"], "read_notes": ["write"]})
    read = _token(runtime, "read")
    _wait_until(lambda: _allowed(_call(runtime, read, "write_note", text="x")), "the new mapping is served", runtime)
    assert _denial(_call(runtime, read, "read_notes"))["required_scopes"] == ["write"]
    server = _db(django_db_blocker, lambda: ResourceServer.objects.get(pk=runtime.server_id))
    assert server.generation > generation
    assert server.policy_fetched_generation == server.generation  # the dashboard shows what the SDK last read

    # The SDK's RFC 9728 metadata names our issuer and the scopes from our policy.
    prm = httpx2.get(runtime.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"), timeout=30).json()
    assert prm["resource"] == runtime.url
    assert prm["authorization_servers"] == [runtime.issuer]
    assert prm["scopes_supported"] == ["read", "write"]

    def audited() -> set[str]:
        events = AuditEvent.objects.filter(target_id=runtime.server_id)
        return set(events.values_list("action", flat=True))

    assert {
        "oauth.resource_server_created",
        "oauth.resource_server_manifest_published",
        "oauth.resource_server_policy_changed",
    } <= _db(django_db_blocker, audited)
