"""Two web nodes behind HAProxy (deploy/haproxy.cfg), with the real `mcp` client: nothing a caller holds is bound
to one process. HAProxy names the node that served each answer (`X-AuthSec-Node`), and `Topology.only` sends
the requests that are not stuck to a session to one chosen node, so each test shows which node did what."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import anyio
import httpx2
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from accounts.models import User
from mcp_endpoint.login import LOGIN_CLIENT_ID, LOGIN_TOOLS
from mcp_endpoint.models import AuthSession
from oauth.models import Client as OAuthClient
from oauth.models import SigningKey
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.admin_form import AdminForm
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, JSON_RPC, Committed, commit_in_acme, get_tokens, hidden_fields, modern_rpc
from tests.support.mcp_login import authorize, confirmation_page, sign_in, submit
from tests.support.topology import NODE_HEADER, Proc, Topology

pytestmark = pytest.mark.django_db
FIVE = sorted(LOGIN_TOOLS)
LIST_CHANGED = "notifications/tools/list_changed"
Served = list[tuple[str, str]]  # (node, Mcp-Session-Id of the request or "") per answer, in order


@pytest.fixture(scope="module", autouse=True)
def cleanup(committed: Committed, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Remove what the nodes committed (login sessions, the login client)."""
    yield
    with django_db_blocker.unblock():
        for slug in ("acme", "globex"):
            with schema_context(f"tenant_{slug}"):
                AuthSession.objects.all().delete()
                OAuthClient.objects.filter(client_id=LOGIN_CLIENT_ID).delete()


def lb(topology: Topology) -> LiveServer:
    """HAProxy as the helpers of tests.support see a server: clients use its URL (AUTHSEC_PUBLIC_URL)."""
    assert topology.haproxy.popen is not None
    return LiveServer(topology.haproxy.popen, topology.url, topology.haproxy.log)


def endpoint(base: str) -> str:
    return f"{base}/t/acme/mcp/demo"


def recorder(served: Served) -> Any:
    """An httpx2 response hook noting which node answered (HAProxy's header) and for which MCP session."""

    def note(response: httpx2.Response) -> None:
        served.append((response.headers.get(NODE_HEADER, "?"), response.request.headers.get("mcp-session-id", "")))

    return note


def async_recorder(served: Served) -> Any:
    note = recorder(served)

    async def hook(response: httpx2.Response) -> None:
        note(response)

    return hook


def nodes_of(served: Served) -> set[str]:
    return {node for node, _ in served}


def mcp_call(
    url: str, name: str | None, arguments: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
) -> tuple[Any, Served]:
    """tools/list (name None: sorted names) or tools/call with the real client (protocol 2026-07-28, no MCP
    session), and the nodes that answered."""
    served: Served = []

    async def main() -> Any:
        http = httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [async_recorder(served)]})
        async with http, Client(streamable_http_client(url, http_client=http), cache=None) as client:
            if name is None:
                return sorted(tool.name for tool in (await client.list_tools()).tools)
            try:
                return await client.call_tool(name, arguments or {})
            except MCPError as exc:
                return exc

    return anyio.run(main), served


def as_json(result: Any) -> dict[str, Any]:
    assert not isinstance(result, MCPError), result
    return json.loads(result.content[0].text)


def browser_confirm(topology: Topology, authorization_url: str, email: str, user_code: str) -> tuple[int, Served]:
    """The user's browser through HAProxy: sign in, consent, our callback, the confirmation page where the user
    types `user_code`. Returns the final page's status and the nodes that answered."""
    served: Served = []
    server = lb(topology)
    hooks = {"response": [recorder(served)]}
    with httpx2.Client(base_url=topology.url, follow_redirects=False, timeout=30, event_hooks=hooks) as http:
        sign_in(http, server, email)
        page = confirmation_page(http, server, authorize(http, server, authorization_url))
        done = submit(http, page, user_code)
        assert done.status_code == 200 and "You can return to your assistant" in done.text, done.text[:2000]
    return done.status_code, served


def list_with(url: str, token: str) -> httpx2.Response:
    """tools/list of the stateless protocol with a bearer token (the raw answer, to see a 401)."""
    return modern_rpc(url, "tools/list", {}, {"Authorization": f"Bearer {token}"})


def tool_names(response: httpx2.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {tool["name"] for tool in response.json()["result"]["tools"]}


def kid_of(token: str) -> str:
    return pyjwt.get_unverified_header(token)["kid"]


def signing_key_pk(kid: str) -> int:
    with schema_context("tenant_acme"):
        return SigningKey.objects.get(kid=kid).pk


def user_id(email: str) -> int:
    with schema_context("tenant_acme"):
        return User.objects.get(email=email).pk


@contextlib.contextmanager
def dashboard(node: Proc) -> Iterator[httpx2.Client]:
    """acme's admin signed in to the dashboard of one node, addressed directly (not through HAProxy)."""
    with httpx2.Client(base_url=node.url, follow_redirects=False, timeout=30) as http:
        page = http.get("/t/acme/admin/login/")
        form = {**hidden_fields(page.text), "username": "admin@acme.test", "password": ADMIN_PASSWORD}
        login = http.post("/t/acme/admin/login/", data=form)
        assert login.status_code == 302, login.text[:2000]
        yield http


def csrf(http: httpx2.Client) -> dict[str, str]:
    return {"X-CSRFToken": http.cookies["csrftoken"]}


class Notes:
    """Notifications the client received; `wait_changed` waits for the next tools/list_changed."""

    def __init__(self) -> None:
        self._changed = anyio.Event()

    async def handler(self, message: Any) -> None:
        if getattr(message, "method", None) == LIST_CHANGED:
            self._changed.set()

    async def wait_changed(self, seconds: float = 10.0) -> None:
        with anyio.fail_after(seconds):
            await self._changed.wait()
        self._changed = anyio.Event()


def session_node(served: Served) -> str:
    """The one node that answered every request of the MCP session (HAProxy sticks on Mcp-Session-Id)."""
    nodes = {node for node, session in served if session}
    assert len(nodes) == 1, served
    return nodes.pop()


# --- Login-tool sessions ----------------------------------------------------------------------------------------


def test_a_login_tool_session_started_on_one_node_is_completed_and_used_on_the_other(
    topology: Topology, committed: Committed
) -> None:
    url = endpoint(topology.url)
    with topology.only("web1"):
        started, served = mcp_call(url, "oauth_start")
    assert nodes_of(served) == {"web1"}
    started = as_json(started)

    with topology.only("web2"):
        _, browser = browser_confirm(topology, started["authorization_url"], "alice@acme.test", started["user_code"])
        status, served = mcp_call(url, "oauth_status", {"session_id": started["session_id"]})
    assert nodes_of(browser) == {"web2"} and nodes_of(served) == {"web2"}
    assert as_json(status) == {"status": "authenticated", "email": "alice@acme.test"}

    # The session is alice's on every node, through HAProxy and on each node addressed directly.
    alice = sorted(EXPECTED["alice@acme.test"] | LOGIN_TOOLS)
    session = {"X-AuthSec-Session": started["session_id"]}
    for node in topology.nodes.values():
        assert mcp_call(endpoint(node.url), None, headers=session)[0] == alice
    for name in topology.nodes:
        with topology.only(name):
            hello, served = mcp_call(url, "hello", headers=session)
        assert hello.content[0].text == "Hello, alice@acme.test!" and nodes_of(served) == {name}


def test_the_nodes_take_the_client_address_haproxy_appends_and_ignore_the_clients_own_hops(
    topology: Topology, committed: Committed
) -> None:
    """deploy/haproxy.cfg appends the client's address to X-Forwarded-For and the nodes trust only HAProxy's
    (TRUSTED_PROXIES): a client connecting from 127.0.0.5 that writes its own hop is recorded as 127.0.0.5."""
    served: Served = []

    async def main() -> dict[str, Any]:
        http = httpx2.AsyncClient(
            transport=httpx2.AsyncHTTPTransport(local_address="127.0.0.5"),
            headers={"X-Forwarded-For": "203.0.113.9"},
            timeout=30,
            event_hooks={"response": [async_recorder(served)]},
        )
        async with http, Client(streamable_http_client(endpoint(topology.url), http_client=http), cache=None) as client:
            return as_json(await client.call_tool("oauth_start", {}))

    started = anyio.run(main)
    assert nodes_of(served) <= set(topology.nodes)
    with schema_context("tenant_acme"):
        assert AuthSession.objects.get(pk=started["session_id"]).started_ip == "127.0.0.5"


# --- Handshake-era MCP sessions (2025-11-25) ---------------------------------------------------------------------


@pytest.mark.parametrize("confirmed_on", ["the other node", "the session's node"])
def test_list_changed_reaches_the_client_whichever_node_confirms_the_login(
    topology: Topology, committed: Committed, confirmed_on: str
) -> None:
    url = endpoint(topology.url)
    served: Served = []

    async def main() -> None:
        notes = Notes()
        http = httpx2.AsyncClient(timeout=30, event_hooks={"response": [async_recorder(served)]})
        client = Client(
            streamable_http_client(url, http_client=http), mode="legacy", cache=None, message_handler=notes.handler
        )
        async with http, client:
            assert client.protocol_version == "2025-11-25"
            started = as_json(await client.call_tool("oauth_start", {}))
            home = session_node(served)
            other = next(name for name in topology.nodes if name != home)
            where = other if confirmed_on == "the other node" else home
            with topology.only(where):
                _, browser = await anyio.to_thread.run_sync(
                    partial(browser_confirm, topology, started["authorization_url"], "bob@acme.test"),
                    started["user_code"],
                )
            assert nodes_of(browser) == {where}
            await notes.wait_changed()
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            assert names == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
            assert session_node(served) == home

    anyio.run(main)


def test_a_2025_11_25_session_keeps_working_across_requests_on_its_node(
    topology: Topology, committed: Committed
) -> None:
    url = endpoint(topology.url)
    token = get_tokens(lb(topology), committed, "carol@acme.test")["access_token"]
    served: Served = []
    bearer = {"Authorization": f"Bearer {token}"}

    async def main() -> None:
        http = httpx2.AsyncClient(headers=bearer, timeout=30, event_hooks={"response": [async_recorder(served)]})
        async with http, Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
            assert client.protocol_version == "2025-11-25"
            for round_ in range(6):
                names = sorted(tool.name for tool in (await client.list_tools()).tools)
                assert names == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)
                result = await client.call_tool("calculator", {"operation": "add", "a": round_, "b": 1})
                assert result.is_error is False and result.content[0].text == str(round_ + 1)

    anyio.run(main)
    home = session_node(served)
    mcp_session = next(session for _, session in served if session)
    assert len([1 for _, session in served if session]) >= 12
    # Why HAProxy sticks on the header: the session lives in its node's memory; the other node does not know it.
    other = next(node for name, node in topology.nodes.items() if name != home)
    headers = {**JSON_RPC, **bearer, "mcp-session-id": mcp_session, "mcp-protocol-version": "2025-11-25"}
    lost = httpx2.post(endpoint(other.url), json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers=headers)
    assert lost.status_code == 404 and lost.json()["error"]["message"] == "Session not found"
    # Requests without a session are balanced over both nodes.
    balanced: Served = []
    for _ in range(4):
        balanced += mcp_call(url, None, headers=bearer)[1]
    assert nodes_of(balanced) == set(topology.nodes)


# --- Changes made on one node, seen by the other ---------------------------------------------------------------


def test_an_rbac_change_on_one_node_shows_on_the_others_next_request(topology: Topology, committed: Committed) -> None:
    a, b = topology.nodes["web1"], topology.nodes["web2"]
    token = get_tokens(lb(topology), committed, "bob@acme.test")["access_token"]
    before = tool_names(list_with(endpoint(b.url), token))  # B has read (and cached) bob's grants
    assert before == EXPECTED["bob@acme.test"] | LOGIN_TOOLS

    with dashboard(a) as admin:
        created = admin.post(
            "/t/acme/api/role-bindings/", json={"role": "admin", "user": user_id("bob@acme.test")}, headers=csrf(admin)
        )
        assert created.status_code == 201, created.text
        after = tool_names(list_with(endpoint(b.url), token))
        assert after > before | {"admin_dashboard", "admin_panel"}

        removed = admin.delete(f"/t/acme/api/role-bindings/{created.json()['id']}/", headers=csrf(admin))
        assert removed.status_code == 204, removed.text
        assert tool_names(list_with(endpoint(b.url), token)) == before


def test_a_token_revoked_on_one_node_is_refused_by_the_others_next_request(
    topology: Topology, committed: Committed
) -> None:
    a, b = topology.nodes["web1"], topology.nodes["web2"]
    token = get_tokens(lb(topology), committed, "carol@acme.test")["access_token"]
    assert tool_names(list_with(endpoint(b.url), token)) == EXPECTED["carol@acme.test"] | LOGIN_TOOLS

    revoked = httpx2.post(
        f"{a.url}/t/acme/oauth/revoke", data={"token": token, "client_id": committed.client_ids["acme"]}, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    refused = list_with(endpoint(b.url), token)
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_a_user_deactivated_on_one_node_is_refused_by_the_others_next_request(
    topology: Topology, committed: Committed
) -> None:
    a, b = topology.nodes["web1"], topology.nodes["web2"]
    token = get_tokens(lb(topology), committed, "dave@acme.test")["access_token"]
    assert tool_names(list_with(endpoint(b.url), token)) == EXPECTED["dave@acme.test"] | LOGIN_TOOLS

    dave = user_id("dave@acme.test")
    with dashboard(a) as admin:
        page = f"/t/acme/admin/accounts/user/{dave}/change/"
        form = AdminForm(admin.get(page).text)
        form.check("is_active", False)
        saved = admin.post(page, data=form.data())
        assert saved.status_code == 302, saved.text[:3000]
    refused = list_with(endpoint(b.url), token)
    assert refused.status_code == 401, refused.text


def test_a_key_rotated_on_one_node_signs_tokens_the_other_accepts_at_once(
    topology: Topology, committed: Committed
) -> None:
    """Node B looked up the tenant's keys a moment ago (a token with a kid it does not know makes it look, and
    it then waits JWKS_REFETCH_INTERVAL before looking again for unknown kids). A key rotated meanwhile on node A
    moves the tenant's issuance version, so B looks again for the new key's first token instead of refusing it."""
    a, b = topology.nodes["web1"], topology.nodes["web2"]
    old_kid = kid_of(get_tokens(lb(topology), committed, "bob@acme.test")["access_token"])
    try:
        with dashboard(a) as admin:
            changelist = admin.get("/t/acme/admin/oauth/signingkey/")
            assert changelist.status_code == 200, changelist.text[:2000]
            stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            headers = {"kid": "no-such-key", "typ": "at+jwt"}
            unknown = pyjwt.encode({"sub": "1"}, stranger, algorithm="RS256", headers=headers)
            assert list_with(endpoint(b.url), unknown).status_code == 401
            rotated = admin.post(
                "/t/acme/admin/oauth/signingkey/",
                data={
                    "action": "rotate_now",
                    "_selected_action": [signing_key_pk(old_kid)],
                    "csrfmiddlewaretoken": hidden_fields(changelist.text)["csrfmiddlewaretoken"],
                },
            )
            assert rotated.status_code == 302, rotated.text[:2000]
        token = get_tokens(lb(topology), committed, "bob@acme.test")["access_token"]
        assert kid_of(token) != old_kid
        assert tool_names(list_with(endpoint(b.url), token)) == EXPECTED["bob@acme.test"] | LOGIN_TOOLS
    finally:
        commit_in_acme(partial(reinstate_signing_key, old_kid))


def reinstate_signing_key(kid: str) -> None:
    """Make `kid` the only current key again, as the session made it (tests elsewhere count the published keys).
    Saved through the model, so every process's copies of the keys are dropped (`oauth.issuance`)."""
    for newer in SigningKey.objects.filter(retired_at__isnull=True).exclude(kid=kid):
        newer.delete()
    key = SigningKey.objects.get(kid=kid)
    key.retired_at = key.expires_at = None
    key.save()


def test_with_no_node_up_haproxy_answers_a_json_rpc_503(topology: Topology, committed: Committed) -> None:
    """What HAProxy answers itself is JSON like the nodes' errors (deploy/haproxy-errors/), never an HTML page."""
    token = get_tokens(lb(topology), committed, "bob@acme.test")["access_token"]
    for name in topology.nodes:
        topology.set_lb_state(name, "maint")
    try:
        answer = list_with(endpoint(topology.url), token)
    finally:
        for name in topology.nodes:
            topology.set_lb_state(name, "ready")
            topology.wait_lb(name, up=True)
    assert answer.status_code == 503 and answer.headers["content-type"] == "application/json", answer.text
    assert answer.headers["retry-after"] == "5"
    error = answer.json()
    assert error["jsonrpc"] == "2.0" and error["id"] is None and error["error"]["code"] == -32000
    assert error["error"]["message"].startswith("Service unavailable")
    assert tool_names(list_with(endpoint(topology.url), token)) == EXPECTED["bob@acme.test"] | LOGIN_TOOLS


# --- Nothing bound to one process ----------------------------------------------------------------------------------


def test_a_token_from_one_node_works_on_the_other_and_a_client_outlives_its_node(
    topology: Topology, committed: Committed
) -> None:
    a, b = topology.nodes["web1"], topology.nodes["web2"]
    # Signed in, authorized and exchanged on node A alone; the audience is the public endpoint (HAProxy's URL).
    direct = LiveServer(a.popen, a.url, a.log)  # type: ignore[arg-type]
    token = get_tokens(direct, committed, "alice@acme.test", resource=endpoint(topology.url))["access_token"]
    alice = EXPECTED["alice@acme.test"] | LOGIN_TOOLS
    assert tool_names(list_with(endpoint(b.url), token)) == alice

    served: Served = []
    bearer = {"Authorization": f"Bearer {token}"}

    async def main() -> None:
        http = httpx2.AsyncClient(headers=bearer, timeout=30, event_hooks={"response": [async_recorder(served)]})
        async with http, Client(streamable_http_client(endpoint(topology.url), http_client=http), cache=None) as client:
            with topology.only("web1"):
                served.clear()
                assert (await client.call_tool("hello", {})).content[0].text == "Hello, alice@acme.test!"
            assert nodes_of(served) == {"web1"}
            served.clear()
            await anyio.to_thread.run_sync(topology.kill_node, "web1")
            # The same client carries on at once: HAProxy sends the next request to the node that is left.
            for _ in range(3):
                assert (await client.call_tool("hello", {})).content[0].text == "Hello, alice@acme.test!"
            assert nodes_of(served) == {"web2"}

    try:
        anyio.run(main)
    finally:
        if not a.alive():
            topology.restart_node("web1")
    assert tool_names(list_with(endpoint(a.url), token)) == alice
