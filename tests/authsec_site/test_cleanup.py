"""The cleanup job (authsec_site.tasks.clear_expired): in every schema, expired rows go and live rows stay."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_tenants.utils import schema_context
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

from accounts.cleanup import clear_expired_sessions
from accounts.models import User
from authsec_site.celery import app as celery_app
from authsec_site.tasks import clear_expired, clear_expired_in_schema
from mcp_endpoint.models import AuthSession
from oauth.models import Client
from rbac.models import Application

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
TENANT_SCHEMAS = ("tenant_acme", "tenant_globex")


def _access(client: Client, user: User, expires: Any) -> AccessToken:
    return AccessToken.objects.create(
        user=user, application=client, token=secrets.token_urlsafe(24), expires=expires, scope="openid"
    )


def _refresh(client: Client, user: User, access: AccessToken | None, *, revoked: Any = None, family: Any = None):  # type: ignore[no-untyped-def]
    return RefreshToken.objects.create(
        user=user,
        application=client,
        token=secrets.token_urlsafe(24),
        access_token=access,
        revoked=revoked,
        token_family=family,
    )


def _id_token(client: Client, user: User, expires: Any) -> IDToken:
    return IDToken.objects.create(user=user, application=client, expires=expires, jti=uuid.uuid4(), scope="openid")


def _grant(client: Client, user: User, expires: Any) -> Grant:
    return Grant.objects.create(
        application=client,
        user=user,
        code=secrets.token_urlsafe(24),
        expires=expires,
        redirect_uri="http://127.0.0.1:8765/callback",
        scope="openid",
        code_challenge="x" * 43,
        code_challenge_method="S256",
        claims="{}",
    )


def _auth_session(application: Application, expires: Any, status: str = AuthSession.Status.PENDING) -> AuthSession:
    return AuthSession.objects.create(
        application=application, code_verifier="v" * 43, expires_at=expires, status=status
    )


def _session(expires: Any) -> Session:
    return Session.objects.create(session_key=secrets.token_hex(16), session_data="", expire_date=expires)


def _populate(schema_name: str) -> dict[str, dict[str, list[int | str]]]:
    """One row of each case in `schema_name`: {"gone": {kind: pks}, "kept": {kind: pks}}."""
    now = timezone.now()
    lifetime = timedelta(seconds=settings.OAUTH_REFRESH_TOKEN_SECONDS)
    keep = timedelta(seconds=settings.MCP_AUTH_SESSION_KEEP_SECONDS)
    gone: dict[str, list[Any]] = {"access": [], "refresh": [], "id": [], "grant": [], "auth": [], "session": []}
    kept: dict[str, list[Any]] = {kind: [] for kind in gone}
    with schema_context(schema_name):
        user = User.objects.create_user(f"cleanup-{secrets.token_hex(3)}@example.test", "pass-word-123")
        client = Client.objects.create(
            name="Cleanup", client_type=Client.CLIENT_PUBLIC, authorization_grant_type=Client.GRANT_AUTHORIZATION_CODE,
            redirect_uris="http://127.0.0.1:8765/callback", client_secret="",
        )  # fmt: skip
        application = Application.objects.create(slug=f"cleanup-{secrets.token_hex(3)}", name="Cleanup")

        kept["access"].append(_access(client, user, now + HOUR).pk)
        gone["access"].append(_access(client, user, now - HOUR).pk)
        # A usable refresh token whose access token expired an hour ago: both stay (the access token anchors it).
        idle_anchor = _access(client, user, now - HOUR)
        kept["access"].append(idle_anchor.pk)
        kept["refresh"].append(_refresh(client, user, idle_anchor).pk)
        # Dormant longer than the refresh lifetime: DOT refuses it; it and its access token go.
        dormant = _access(client, user, now - lifetime - HOUR)
        gone["access"].append(dormant.pk)
        gone["refresh"].append(_refresh(client, user, dormant).pk)
        # Orphan (its access token deleted out of band).
        gone["refresh"].append(_refresh(client, user, None).pk)
        # Live family: a member rotated away long ago stays while the family's current token is usable.
        live_family = uuid.uuid4()
        kept["refresh"].append(_refresh(client, user, None, revoked=now - lifetime - HOUR, family=live_family).pk)
        current = _access(client, user, now + HOUR)
        kept["access"].append(current.pk)
        kept["refresh"].append(_refresh(client, user, current, family=live_family).pk)
        # Dead family: nothing usable left, revoked longer than the lifetime ago.
        gone["refresh"].append(_refresh(client, user, None, revoked=now - lifetime - HOUR, family=uuid.uuid4()).pk)
        # Revoked recently: kept for the refresh lifetime, whatever its family.
        kept["refresh"].append(_refresh(client, user, None, revoked=now - HOUR, family=uuid.uuid4()).pk)

        kept["id"].append(_id_token(client, user, now + HOUR).pk)
        gone["id"].append(_id_token(client, user, now - HOUR).pk)
        with_access = _id_token(client, user, now - HOUR)  # its access token (and refresh token) still live
        kept["id"].append(with_access.pk)
        live_access = _access(client, user, now + HOUR)
        live_access.id_token = with_access
        live_access.save()
        kept["access"].append(live_access.pk)
        kept["refresh"].append(_refresh(client, user, live_access).pk)

        kept["grant"].append(_grant(client, user, now + timedelta(seconds=60)).pk)
        gone["grant"].append(_grant(client, user, now - timedelta(seconds=1)).pk)

        kept["auth"].append(_auth_session(application, now + timedelta(minutes=5)).pk)
        kept["auth"].append(_auth_session(application, now - HOUR).pk)  # expired, inside the keep window
        kept["auth"].append(_auth_session(application, now + HOUR, AuthSession.Status.LOGGED_OUT).pk)
        gone["auth"].append(_auth_session(application, now - keep - HOUR).pk)
        gone["auth"].append(_auth_session(application, now - keep - HOUR, AuthSession.Status.AUTHENTICATED).pk)

        kept["session"].append(_session(now + HOUR).pk)
        gone["session"].append(_session(now - timedelta(seconds=1)).pk)
    return {"gone": gone, "kept": kept}


MODELS = {
    "access": AccessToken, "refresh": RefreshToken, "id": IDToken, "grant": Grant, "auth": AuthSession,
    "session": Session,
}  # fmt: skip


def _present(schema_name: str, rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
    with schema_context(schema_name):
        return {
            kind: sorted(MODELS[kind].objects.filter(pk__in=pks).values_list("pk", flat=True))
            for kind, pks in rows.items()
        }


def test_every_tenant_loses_its_expired_rows_and_keeps_its_live_ones() -> None:
    cases = {schema: _populate(schema) for schema in TENANT_SCHEMAS}
    with schema_context("public"):
        public_live, public_expired = _session(timezone.now() + HOUR).pk, _session(timezone.now() - HOUR).pk

    celery_app.conf.task_always_eager = True  # the fan-out runs each schema's task in this process
    try:
        schemas = clear_expired.apply().get()
    finally:
        celery_app.conf.task_always_eager = False

    assert set(schemas) >= {"public", *TENANT_SCHEMAS}
    for schema, case in cases.items():
        assert _present(schema, case["gone"]) == {kind: [] for kind in case["gone"]}, schema
        assert _present(schema, case["kept"]) == {kind: sorted(pks) for kind, pks in case["kept"].items()}, schema
    with schema_context("public"):
        assert list(Session.objects.filter(pk__in=[public_live, public_expired]).values_list("pk", flat=True)) == [
            public_live
        ]


def test_a_second_run_deletes_nothing() -> None:
    _populate("tenant_acme")
    first = clear_expired_in_schema.apply(args=["tenant_acme"]).get()
    assert first == {
        "orphaned_refresh_tokens": 1, "expired_refresh_tokens": 1, "revoked_refresh_tokens": 1, "access_tokens": 2,
        "id_tokens": 1, "grants": 1, "mcp_auth_sessions": 2, "sessions": 1,
    }  # fmt: skip
    second = clear_expired_in_schema.apply(args=["tenant_acme"]).get()
    assert set(second.values()) == {0}


def test_batches_smaller_than_the_work_still_delete_everything(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CLEANUP_BATCH_SIZE = 1
    with schema_context("tenant_globex"):
        for _ in range(3):
            _session(timezone.now() - HOUR)
        assert clear_expired_sessions() == 3
        assert not Session.objects.filter(expire_date__lt=timezone.now()).exists()


def test_the_public_schema_run_only_touches_sessions() -> None:
    assert set(clear_expired_in_schema.apply(args=["public"]).get()) == {"sessions"}


def test_beat_schedules_the_cleanup_hourly() -> None:
    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["expired-rows-cleanup"]
    assert entry["task"] == "authsec_site.tasks.clear_expired"
    assert entry["schedule"] == settings.CLEANUP_INTERVAL == 3600
