"""Self-service revoke, live (issue 25): a user signs in to their account page on a running server, revokes the
client holding their token, and that client's next MCP request — made with the real `mcp` client, then as a raw
bearer request — is refused."""

from __future__ import annotations

import re

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from mcp_endpoint.login import LOGIN_TOOLS
from tests.support.live import LiveServer
from tests.support.mcp import EXPECTED, JSON_RPC, Committed, get_tokens, hidden_fields, mcp_list, url
from tests.support.mcp_login import sign_in

pytestmark = pytest.mark.django_db
PAGE = "/t/acme/account/"


def _revoke_on_the_page(server: LiveServer, email: str, kind: str) -> None:
    """Sign in as `email`, open the account page, and press the one Revoke button of `kind` (its form, CSRF and all)."""
    with httpx2.Client(base_url=server.url, follow_redirects=False, timeout=30) as http:
        sign_in(http, server, email)
        page = http.get(PAGE)
        assert page.status_code == 200, page.text[:2000]
        actions = re.findall(rf'action="(/t/acme/account/revoke/{kind}/[^"]+)"', page.text)
        assert len(actions) == 1, actions
        done = http.post(actions[0], data=hidden_fields(page.text), headers={"Referer": server.url + PAGE})
        assert done.status_code == 302 and done.headers["location"] == PAGE, done.text[:2000]
        assert f'action="/t/acme/account/revoke/{kind}/' not in http.get(PAGE).text


def _refused(server: LiveServer, token: str) -> None:
    with pytest.raises((MCPError, httpx2.HTTPStatusError, ExceptionGroup)):  # the real client cannot connect
        mcp_list(url(server), token)
    response = httpx2.post(
        url(server),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**JSON_RPC, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["error_description"] == "token revoked"


def test_revoking_the_consent_refuses_the_clients_next_mcp_request(
    asgi_server: LiveServer, committed: Committed
) -> None:
    token = get_tokens(asgi_server, committed, "bob@acme.test")["access_token"]
    assert mcp_list(url(asgi_server), token) == sorted(EXPECTED["bob@acme.test"] | LOGIN_TOOLS)
    _revoke_on_the_page(asgi_server, "bob@acme.test", "consent")
    _refused(asgi_server, token)


def test_revoking_the_refresh_token_refuses_the_clients_next_mcp_request(
    asgi_server: LiveServer, committed: Committed
) -> None:
    issued = get_tokens(asgi_server, committed, "carol@acme.test", scope="openid email read write offline_access")
    assert mcp_list(url(asgi_server), issued["access_token"]) == sorted(EXPECTED["carol@acme.test"] | LOGIN_TOOLS)
    _revoke_on_the_page(asgi_server, "carol@acme.test", "token")
    _refused(asgi_server, issued["access_token"])
    refreshed = httpx2.post(
        f"{asgi_server.url}/t/acme/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": committed.client_ids["acme"],
        },
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
