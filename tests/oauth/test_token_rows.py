"""How the token endpoint stores what it issues (`oauth.token_rows`, `TenantOAuth2Validator._store_tokens`): the
rows of a grant in one statement, linked to each other as django-oauth-toolkit links them; with the audit pipeline
running (a server process), no transaction around that statement and the issuance event written by the pipeline;
a guard whose gate stays empty writes nothing."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from audit.pipeline.queue import running_in_thread
from oauth import token_rows
from oauth.models import Client
from tests.factories import OAuthClientFactory
from tests.support.audit import wait_for_event
from tests.support.mcp import Committed
from tests.support.oauth import REDIRECT, exchange, get_code, login, mcp_url, pkce, token_request

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
IDToken = get_id_token_model()


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def committed_client(committed: Committed, django_db_blocker: Any) -> Iterator[Client]:
    with django_db_blocker.unblock():
        with schema_context("tenant_acme"):
            client = OAuthClientFactory(name="Token rows app", redirect_uris=REDIRECT)
        try:
            yield client
        finally:
            with schema_context("tenant_acme"):
                Client.objects.filter(pk=client.pk).delete()  # its tokens and consents with it


def _writes(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent that is not a read (Django logs BEGIN and COMMIT of a transaction too)."""
    words = [query["sql"].split(" ", 1)[0] for query in queries.captured_queries]
    return [word for word in words if word != "SELECT"]


def test_with_the_pipeline_running_a_code_exchange_and_a_refresh_are_single_statements_audited_by_the_pipeline(
    committed_client: Client, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock(), override_settings(MCP_AUDIT_WRITER="thread"), running_in_thread():
        verifier, challenge = pkce()
        code, _ = get_code(
            login("alice@acme.test"), committed_client, challenge, scope="openid read offline_access",
            resource=mcp_url(),
        )  # fmt: skip
        with schema_context("tenant_acme"), CaptureQueriesContext(connection) as queries:
            response = exchange(committed_client, code, verifier)
        assert response.status_code == 200, response.content
        # The rows written, the code used up: no BEGIN/COMMIT around the one INSERT statement.
        assert _writes(queries) == ["WITH", "DELETE"], queries.captured_queries
        issued = response.json()
        with schema_context("tenant_acme"):
            access = AccessToken.objects.get(token_checksum=_checksum(issued["access_token"]))
            refresh = RefreshToken.objects.get(token_checksum=_checksum(issued["refresh_token"]))
            id_token = IDToken.objects.get(pk=access.id_token_id)
            assert refresh.access_token_id == access.pk and refresh.token_family is not None
            assert access.user_id == refresh.user_id == id_token.user_id
            assert access.application_id == refresh.application_id == id_token.application_id == committed_client.pk
            assert access.resource == refresh.resource == [mcp_url()]
            assert access.token == refresh.token == ""  # RFC 9700: only the checksums are stored
            assert access.source_refresh_token_id is None
        issued_event = wait_for_event(action="oauth.token_issued", data__client_id=committed_client.client_id)
        assert issued_event.data["grant_type"] == "authorization_code"

        with schema_context("tenant_acme"), CaptureQueriesContext(connection) as queries:
            renewed = token_request(
                grant_type="refresh_token", refresh_token=issued["refresh_token"], client_id=committed_client.client_id
            )
        assert renewed.status_code == 200, renewed.content
        # The refresh token's single use and the new rows: one statement.
        assert _writes(queries) == ["WITH"], queries.captured_queries
        with schema_context("tenant_acme"):
            old = RefreshToken.objects.get(pk=refresh.pk)
            assert old.revoked is not None and old.access_token_id is None
            assert not AccessToken.objects.filter(pk=access.pk).exists()
            new_refresh = RefreshToken.objects.get(token_checksum=_checksum(renewed.json()["refresh_token"]))
            new_access = AccessToken.objects.get(pk=new_refresh.access_token_id)
            assert new_refresh.token_family == refresh.token_family
            assert new_access.source_refresh_token_id == refresh.pk
            assert new_access.id_token_id is not None
        wait_for_event(action="oauth.token_refreshed", data__client_id=committed_client.client_id)


@pytest.mark.django_db
def test_select_linked_reads_the_row_with_its_linked_rows_and_nulls(demo_users: Any, clients: Any) -> None:
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), clients.public, challenge, scope="openid read offline_access")
    issued = exchange(clients.public, code, verifier).json()
    checksum = _checksum(issued["refresh_token"])
    row = token_rows.select_linked(RefreshToken, "token_checksum", checksum, related=("access_token", "user"))
    expected = RefreshToken.objects.select_related("access_token", "user").get(token_checksum=checksum)
    with CaptureQueriesContext(connection) as queries:
        assert row.pk == expected.pk and row.token_family == expected.token_family
        assert row.resource == expected.resource and isinstance(row.resource, list)  # the JSON column decoded
        assert (
            row.access_token.pk == expected.access_token.pk
            and row.access_token.expires == expected.access_token.expires
        )
        assert row.user.email == "alice@acme.test"
    assert not queries.captured_queries  # the linked rows came with it
    AccessToken.objects.filter(pk=expected.access_token_id).delete()
    row = token_rows.select_linked(RefreshToken, "token_checksum", checksum, related=("access_token",))
    with CaptureQueriesContext(connection) as queries:
        assert row.access_token is None  # a null key: known to be null, not read
    assert not queries.captured_queries
    assert token_rows.select_linked(RefreshToken, "token_checksum", "0" * 64) is None


@pytest.mark.django_db
def test_a_guard_whose_gate_stays_empty_writes_nothing(demo_users: Any, clients: Any) -> None:
    rows = [
        IDToken(
            user=demo_users["alice@acme.test"],
            application=clients.public,
            scope="openid",
            expires="2030-01-01T00:00:00Z",
        )
    ]  # noqa: E501
    access = AccessToken(user=demo_users["alice@acme.test"], application=clients.public, scope="openid",
                         expires="2030-01-01T00:00:00Z", id_token=rows[0], token=secrets.token_urlsafe(16))  # fmt: skip
    rows.append(access)
    before = (IDToken.objects.count(), AccessToken.objects.count())
    closed = token_rows.Guard(ctes="gate AS (SELECT 1 AS one WHERE false)", params=[], gate="gate",
                              outputs="(SELECT count(*) FROM gate)", from_clause="(SELECT 1) AS x")  # fmt: skip
    token_rows.announce(rows)
    assert token_rows.insert_linked(rows, closed) == (0,)
    assert all(row.pk is None and row._state.adding for row in rows)
    assert (IDToken.objects.count(), AccessToken.objects.count()) == before
    opened = token_rows.Guard(ctes="gate AS (SELECT 1 AS one)", params=[], gate="gate",
                              outputs="(SELECT count(*) FROM gate)", from_clause="(SELECT 1) AS x")  # fmt: skip
    assert token_rows.insert_linked(rows, opened) == (1,)
    assert AccessToken.objects.get(pk=access.pk).id_token_id == rows[0].pk
