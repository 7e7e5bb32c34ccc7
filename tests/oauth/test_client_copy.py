"""Each process keeps the row of a client that asked for tokens (`TenantOAuth2Validator._load_application`, under
the tenant's `oauth.issuance` version). A kept row must never outlive a change: a rejection, a new secret or a
deletion is refused on the very next token request, made in this process or (the version token moved by another
node) elsewhere."""

from __future__ import annotations

import secrets
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from oauth import issuance
from oauth.client_services import delete_client, set_client_status
from oauth.models import Client
from tests.factories import OAuthClientFactory
from tests.support.oauth import basic_auth, token_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


def _machine() -> tuple[Client, str]:
    secret = secrets.token_urlsafe(32)
    return OAuthClientFactory(machine=True, client_secret=secret), secret


def _status(client: Client, secret: str) -> int:
    return token_request(grant_type="client_credentials", headers=basic_auth(client.client_id, secret)).status_code


def _client_queries(client: Client, secret: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert _status(client, secret) == 200
    return sum('FROM "oauth_client"' in query["sql"] for query in queries)


def test_the_row_is_read_once_then_kept(demo_users) -> None:  # type: ignore[no-untyped-def]
    client, secret = _machine()
    assert _client_queries(client, secret) == 1
    assert _client_queries(client, secret) == 0


def test_a_rejected_client_is_refused_on_its_next_request(demo_users) -> None:  # type: ignore[no-untyped-def]
    client, secret = _machine()
    assert _status(client, secret) == 200
    set_client_status(actor="tests", client=client, status=Client.Status.REJECTED)
    assert _status(client, secret) == 401


def test_a_new_secret_replaces_the_old_one_at_once(demo_users) -> None:  # type: ignore[no-untyped-def]
    client, old = _machine()
    assert _status(client, old) == 200
    new = secrets.token_urlsafe(32)
    client.client_secret = new
    client.save()
    assert _status(client, old) == 401
    assert _status(client, new) == 200


def test_a_deleted_client_is_refused(demo_users) -> None:  # type: ignore[no-untyped-def]
    client, secret = _machine()
    assert _status(client, secret) == 200
    delete_client(client, actor="tests")
    assert _status(client, secret) == 401


def test_a_change_made_on_another_node_is_seen_by_the_version_token(demo_users) -> None:  # type: ignore[no-untyped-def]
    """Another node's change reaches this process only through Redis: the row changes without this process's signal,
    and the node moves the tenant's version token after its commit (`oauth.issuance.changed`)."""
    client, secret = _machine()
    assert _status(client, secret) == 200
    Client.objects.filter(pk=client.pk).update(status=Client.Status.REJECTED)  # no signal in this process
    cache.set(issuance.VERSION_KEY, uuid.uuid4().hex, timeout=None)  # what the other node does after its commit
    assert _status(client, secret) == 401
