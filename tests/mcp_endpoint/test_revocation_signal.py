"""The revocation endpoint tells the MCP endpoint's deny-list through `oauth.signals.token_revoked`, at once
(not only after commit, as the access-token row's deletion does), for an access or a refresh token."""

from __future__ import annotations

import hashlib
import time

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient

from mcp_endpoint.bearer import REVOKED_PREFIX
from oauth.signals import token_revoked
from tests.support.oauth import exchange, get_code, login, pkce

pytestmark = pytest.mark.django_db


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_token_revoked_feeds_the_deny_list(in_acme) -> None:  # type: ignore[no-untyped-def]
    digest = _digest(f"not-a-token-{time.time_ns()}")
    token_revoked.send(sender=object, digests=[(digest, int(time.time()) + 60)])
    assert cache.get(REVOKED_PREFIX + digest)


@pytest.mark.parametrize("revoked", ["access_token", "refresh_token"])
def test_revoking_at_the_endpoint_denies_the_access_token_before_commit(demo_users, clients, revoked) -> None:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, scope="openid read offline_access")
    tokens = exchange(clients.public, code, verifier).json()
    digest = _digest(tokens["access_token"])
    assert not cache.get(REVOKED_PREFIX + digest)  # positive control
    # The test's transaction never commits, so only the signal (not the row's post_delete hook) can feed it.
    response = HttpClient().post(
        "/t/acme/oauth/revoke", {"token": tokens[revoked], "client_id": clients.public.client_id}
    )
    assert response.status_code == 200, response.content
    assert cache.get(REVOKED_PREFIX + digest)
