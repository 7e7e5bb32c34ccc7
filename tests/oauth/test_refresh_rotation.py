"""The token endpoint's own refresh path (`TenantOAuth2Validator.validate_refresh_token`, `oauth.refresh.consume`):
a refresh token is good for one use, also when two requests race for it; every refusal is the right OAuth error
and leaves the token as it was (docs/benchmarks.md "Token endpoint")."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, pre_save
from django.http import HttpResponse
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from audit.models import AuditEvent
from audit.pipeline.queue import running_in_thread
from oauth import refresh
from oauth.models import Client
from tests.factories import OAuthClientFactory
from tests.support.oauth import REDIRECT, exchange, get_code, login, pkce, token_request

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
IDToken = get_id_token_model()


def _assert_error(response: HttpResponse, status: int, error: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"] == error, response.content
    assert response["Cache-Control"] == "no-store"


def _tokens(client: Client, scope: str = "openid read offline_access") -> dict[str, Any]:
    verifier, challenge = pkce()
    code, _ = get_code(login("alice@acme.test"), client, challenge, scope=scope)
    response = exchange(client, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(client: Client, refresh_token: str, **extra: str) -> HttpResponse:
    return token_request(grant_type="refresh_token", refresh_token=refresh_token, client_id=client.client_id, **extra)


def _row(refresh_token: str) -> Any:
    return RefreshToken.objects.get(token_checksum=hashlib.sha256(refresh_token.encode()).hexdigest())


@pytest.mark.django_db
def test_consume_uses_a_refresh_token_once_and_announces_its_access_token(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    row = _row(first["refresh_token"])
    access = AccessToken.objects.get(pk=row.access_token_id)
    announced: list[tuple[int, str]] = []

    def deleted(instance: Any, **kwargs: Any) -> None:
        announced.append((instance.pk, instance.token_checksum))

    post_delete.connect(deleted, sender=AccessToken, dispatch_uid="test-consume-announces")
    try:
        assert refresh.consume(row, now=timezone.now()) is True
        assert refresh.consume(_row(first["refresh_token"]), now=timezone.now()) is False  # a second use: no change
    finally:
        post_delete.disconnect(sender=AccessToken, dispatch_uid="test-consume-announces")
    assert announced == [(access.pk, access.token_checksum)]  # the MCP endpoint's offline check hears of it
    stored = _row(first["refresh_token"])
    assert stored.revoked is not None and stored.access_token_id is None
    assert not AccessToken.objects.filter(pk=access.pk).exists()


@pytest.mark.django_db
def test_refresh_rotates_keeps_the_family_and_links_the_new_pair(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    old = _row(first["refresh_token"])
    # Live-server tests elsewhere commit events of the same action: count only those written from here on.
    last_before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = _refresh(clients.public, first["refresh_token"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refresh_token"] != first["refresh_token"] and body["id_token"]
    new = _row(body["refresh_token"])
    assert new.token_family == old.token_family and new.revoked is None
    assert new.access_token.source_refresh_token_id == old.pk
    assert new.access_token.id_token_id is not None  # the ID token's row, stored in the same transaction
    assert new.resource == old.resource  # RFC 8707: the refresh token's audience is kept
    assert _row(first["refresh_token"]).revoked is not None
    refreshed = AuditEvent.objects.filter(action="oauth.token_refreshed", pk__gt=last_before)
    assert [event.data["client_id"] for event in refreshed] == [clients.public.client_id]


@pytest.mark.django_db
def test_another_clients_refresh_token_is_invalid_grant_and_stays_usable(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    other = OAuthClientFactory(name="Other native app", redirect_uris=REDIRECT)
    _assert_error(_refresh(other, first["refresh_token"]), 400, "invalid_grant")
    assert _row(first["refresh_token"]).revoked is None
    assert _refresh(clients.public, first["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_refresh_of_an_inactive_user_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    type(demo_users["alice@acme.test"]).objects.filter(email="alice@acme.test").update(is_active=False)
    _assert_error(_refresh(clients.public, first["refresh_token"]), 400, "invalid_grant")
    assert _row(first["refresh_token"]).revoked is None


@pytest.mark.django_db
def test_expired_refresh_token_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    row = _row(first["refresh_token"])
    past = timezone.now() - timedelta(seconds=settings.OAUTH_REFRESH_TOKEN_SECONDS + 1)
    AccessToken.objects.filter(pk=row.access_token_id).update(expires=past)
    _assert_error(_refresh(clients.public, first["refresh_token"]), 400, "invalid_grant")


@pytest.mark.django_db
def test_refresh_token_whose_access_token_was_revoked_is_invalid_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    AccessToken.objects.filter(pk=_row(first["refresh_token"]).access_token_id).delete()
    _assert_error(_refresh(clients.public, first["refresh_token"]), 400, "invalid_grant")


@pytest.mark.django_db
def test_unknown_or_missing_refresh_token_is_a_clear_error(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # Only events after this point: live-server tests commit reuse events of their own to tenant_acme.
    last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    _assert_error(_refresh(clients.public, "not-a-refresh-token"), 400, "invalid_grant")
    _assert_error(_refresh(clients.public, "x" * 5000), 400, "invalid_grant")
    missing = token_request(grant_type="refresh_token", client_id=clients.public.client_id)
    _assert_error(missing, 400, "invalid_request")
    assert not AuditEvent.objects.filter(action="oauth.refresh_reuse_detected", seq__gt=last).exists()


@pytest.mark.django_db
def test_refresh_cannot_widen_the_audience(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _tokens(clients.public)
    widened = _refresh(clients.public, first["refresh_token"], resource="https://elsewhere.example/mcp")
    _assert_error(widened, 400, "invalid_target")
    assert _row(first["refresh_token"]).revoked is None  # the refused request used nothing


def _server_process(on: bool) -> contextlib.AbstractContextManager[Any]:
    """With `on`, this process runs its audit pipeline, as a server process does: the token endpoint then writes a
    rotation as one statement with no transaction around it (`TenantOAuth2Validator.save_bearer_token`)."""
    if not on:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(override_settings(MCP_AUDIT_WRITER="thread"))
    stack.enter_context(running_in_thread())
    return stack


@pytest.mark.django_db
@pytest.mark.parametrize("server_process", [False, True], ids=["no-pipeline", "pipeline"])
def test_refresh_used_by_a_request_racing_in_between_is_invalid_grant_and_revokes_the_family(  # type: ignore[no-untyped-def]
    demo_users, clients, server_process
) -> None:
    # The interleaving of two requests in one process: this request has validated the refresh token and stores its
    # tokens; just before its single-use statement, the other request's real statement uses the token (run from a
    # receiver of the new ID token's `pre_save`, sent before that statement, in this request's transaction, which
    # then rolls back with it).
    first = _tokens(clients.public)

    def racing_request_used_it(**kwargs: Any) -> None:
        refresh.consume(_row(first["refresh_token"]), now=timezone.now())

    pre_save.connect(racing_request_used_it, sender=IDToken, dispatch_uid="test-racing-refresh")
    try:
        with _server_process(server_process):
            raced = _refresh(clients.public, first["refresh_token"])
    finally:
        pre_save.disconnect(sender=IDToken, dispatch_uid="test-racing-refresh")
    _assert_error(raced, 400, "invalid_grant")
    family = _row(first["refresh_token"]).token_family
    assert not RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists()
    assert not AccessToken.objects.filter(application=clients.public).exists()
    event = AuditEvent.objects.get(action="oauth.refresh_reuse_detected", data__family=str(family))
    assert event.outcome == "deny"
    assert event.data["client_id"] == clients.public.client_id
    _assert_error(_refresh(clients.public, first["refresh_token"]), 400, "invalid_grant")


# --- Two real requests, two database connections -----------------------------------------------------------------


@pytest.mark.parametrize("server_process", [False, True], ids=["no-pipeline", "pipeline"])
def test_two_concurrent_refreshes_of_one_token_one_wins_and_the_family_is_revoked(  # type: ignore[no-untyped-def]
    committed, django_db_blocker, server_process
) -> None:
    """Both requests validate the same refresh token and wait for each other inside their token transactions
    (a barrier in a receiver of the new ID token's `pre_save`), then both try to use it: exactly one gets tokens; the
    other waits on the row lock, finds the token used, and answers invalid_grant after revoking the family."""
    with django_db_blocker.unblock():
        with schema_context("tenant_acme"):
            client = OAuthClientFactory(name="Racing native app", redirect_uris=REDIRECT)
        try:
            first = _tokens(client)
            barrier = threading.Barrier(2, timeout=30)
            racers: set[int] = set()
            answers: list[HttpResponse] = []

            def both_validated(**kwargs: Any) -> None:
                if threading.get_ident() in racers:
                    barrier.wait()

            def refresh_once() -> None:
                racers.add(threading.get_ident())
                try:
                    answers.append(_refresh(client, first["refresh_token"]))
                finally:
                    connection.close()

            pre_save.connect(both_validated, sender=IDToken, dispatch_uid="test-concurrent-refresh")
            try:
                with _server_process(server_process):
                    threads = [threading.Thread(target=refresh_once) for _ in range(2)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join(60)
            finally:
                pre_save.disconnect(sender=IDToken, dispatch_uid="test-concurrent-refresh")
            assert sorted(answer.status_code for answer in answers) == [200, 400], [a.content for a in answers]
            winner = next(answer for answer in answers if answer.status_code == 200).json()
            loser = next(answer for answer in answers if answer.status_code == 400)
            _assert_error(loser, 400, "invalid_grant")
            # The winner's tokens went with the family: the reuse could be the thief's or the client's.
            _assert_error(_refresh(client, winner["refresh_token"]), 400, "invalid_grant")
            with schema_context("tenant_acme"):
                family = _row(first["refresh_token"]).token_family
                assert not RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists()
                assert not AccessToken.objects.filter(application=client).exists()
                assert AuditEvent.objects.filter(
                    action="oauth.refresh_reuse_detected", data__family=str(family)
                ).exists()
        finally:
            with schema_context("tenant_acme"):
                Client.objects.filter(pk=client.pk).delete()  # its tokens, grants and consents with it
