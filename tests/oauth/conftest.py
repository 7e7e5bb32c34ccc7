"""Fixtures of the OAuth tests alone: a resource server in acme, alice's tokens from a full code flow."""

from __future__ import annotations

import pytest

from tenants.models import Tenant
from tests.support.oauth import OAuthClients, ResourceServer, exchange, get_code, login, make_resource_server, pkce


@pytest.fixture
def resource_server(in_acme: Tenant) -> ResourceServer:
    return make_resource_server()


@pytest.fixture
def code_tokens(demo_users: dict[str, object], clients: OAuthClients) -> dict[str, str]:
    """alice's tokens (access, refresh, id) from a complete code + PKCE flow with the public client."""
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, scope="openid email read offline_access")
    response = exchange(clients.public, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()
