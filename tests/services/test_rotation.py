"""Rotation with each rotator against real services: generated secrets, OAuth2 refresh at this server's own
token endpoint, and PostgreSQL credentials leased from OpenBao's database engine. Check-and-set, kept
versions, failure handling and idempotence inside the policy window."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from audit.models import AuditEvent
from authsec_site.lib import vault
from services import rotators, services
from services.models import SecretVersion, Service
from services.sdk import read_credentials
from tests.support.live import LiveServer
from tests.support.mcp import Committed, commit_in_acme, get_tokens, mcp_list
from tests.support.services import make_service, session_for, unique_secret, vault_value

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_token_endpoints(settings) -> None:  # type: ignore[no-untyped-def]
    """The token endpoints here listen on 127.0.0.1 (the live server, a closed port): the development setting
    admits loopback for them (`authsec_site.lib.outbound`); other private addresses stay refused."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True


def _rotate(service: Service, force: bool = True) -> services.RotationResult:
    try:
        return services.rotate_service(actor="tests", service_id=service.pk, force=force)
    finally:
        service.refresh_from_db()


def _events(service: Service, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_id=str(service.pk), target_type="services.service", action=action))


# --- Generated secrets -------------------------------------------------------------------------------------------


def test_generated_rotation_makes_a_new_version_with_the_policy_alphabet(in_acme) -> None:  # type: ignore[no-untyped-def]
    first = unique_secret()
    service = make_service(
        {"api_key": first},
        service_type="api_key",
        rotation_kind="generated",
        rotation_config={"length": 64, "alphabet": "hex"},
        keep_versions=3,
    )
    assert _rotate(service).version == 2
    data, version = vault_value(service)
    assert version == 2 == service.vault_version and len(data["api_key"]) == 64
    assert set(data["api_key"]) <= set("0123456789abcdef") and data["api_key"] != first
    assert service.status == "active" and service.last_rotated_at is not None
    assert vault_value(service, 1)[0] == {"api_key": first}  # kept
    for _ in range(3):
        _rotate(service)
    # keep_versions=3: Vault keeps versions 3..5 only.
    with pytest.raises(vault.VaultError):
        vault_value(service, 2)
    assert vault_value(service, 3)[1] == 3
    reasons = list(SecretVersion.objects.filter(service=service).values_list("version", "reason"))
    assert reasons == [(5, "rotated"), (4, "rotated"), (3, "rotated"), (2, "rotated"), (1, "created")]
    event = _events(service, "service.secret_rotated")[0]
    assert event.data["rotation_kind"] == "generated" and data["api_key"] not in str(event.data)


def test_generated_keeps_the_other_credential_keys(in_acme) -> None:  # type: ignore[no-untyped-def]
    service = make_service(
        {"username": "svc-user", "password": unique_secret()}, service_type="basic_auth", rotation_kind="generated"
    )
    _rotate(service)
    data, _ = vault_value(service)
    assert data["username"] == "svc-user" and len(data["password"]) == 40


def test_running_twice_inside_the_policy_window_makes_one_version(in_acme) -> None:  # type: ignore[no-untyped-def]
    service = make_service(
        {"api_key": unique_secret()},
        service_type="api_key",
        rotation_kind="generated",
        rotation_policy="interval",
        rotation_interval_days=7,
    )
    assert service in Service.objects.due_for_rotation()  # never rotated yet
    first, second = _rotate(service, force=False), _rotate(service, force=False)
    assert (first.rotated, first.version) == (True, 2)
    assert (second.rotated, second.version, second.message) == (False, 2, "not due yet")
    assert vault.tenant_kv_current_version(connection.schema_name, service.vault_path) == 2
    assert service not in Service.objects.due_for_rotation()
    Service.objects.filter(pk=service.pk).update(last_rotated_at=timezone.now() - timedelta(days=8))
    assert service in Service.objects.due_for_rotation()
    assert _rotate(service, force=False).version == 3


def test_on_demand_and_none_policies_are_never_due(in_acme) -> None:  # type: ignore[no-untyped-def]
    for policy in ("on_demand", "none"):
        service = make_service(
            {"api_key": unique_secret()}, service_type="api_key", rotation_kind="generated", rotation_policy=policy
        )
        assert service not in Service.objects.due_for_rotation()
        assert _rotate(service, force=False).rotated is False


class _Interloper:
    """A rotator during whose work another writer adds a version: check-and-set must make ours fail."""

    def __init__(self) -> None:
        self.inner = rotators.GeneratedSecretRotator()
        self.value = unique_secret("interloper")

    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]:
        base = vault.tenant_kv_current_version(connection.schema_name, service.vault_path)
        vault.tenant_kv_write(connection.schema_name, service.vault_path, {"api_key": self.value}, cas=base)
        return self.inner.rotate(service, current)

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None:
        raise AssertionError("a failed rotation has nothing to commit")


def test_check_and_set_stops_a_concurrent_writer_from_being_clobbered(in_acme) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"api_key": unique_secret()}, service_type="api_key", rotation_kind="generated")
    interloper = _Interloper()
    previous = rotators.register_rotator("generated", interloper)
    try:
        with pytest.raises(services.RotationError, match="check-and-set failed"):
            _rotate(service)
    finally:
        rotators.register_rotator("generated", previous)
    assert vault_value(service) == ({"api_key": interloper.value}, 2)  # the other write survived
    assert service.vault_version == 1 and service.status == "rotation_failed"
    assert _rotate(service).version == 3  # the next run goes on from Vault's newest version


def test_a_failed_rotation_keeps_the_current_version_and_is_audited(in_acme) -> None:  # type: ignore[no-untyped-def]
    token, refresh = unique_secret("at"), unique_secret("rt")
    service = make_service(
        {"access_token": token, "refresh_token": refresh, "client_id": "abc"},
        service_type="oauth2",
        rotation_kind="oauth2_refresh",
        rotation_config={"token_url": "http://127.0.0.1:9/token"},
    )
    with pytest.raises(services.RotationError) as excinfo:
        _rotate(service)
    assert str(excinfo.value) == "The token endpoint could not be reached (unreachable)."
    assert service.status == "rotation_failed" and service.rotation_failures == 1
    assert service.last_rotation_error == str(excinfo.value) and service.vault_version == 1
    assert vault_value(service) == ({"access_token": token, "refresh_token": refresh, "client_id": "abc"}, 1)
    failed = _events(service, "service.rotation_failed")
    assert [(e.outcome, e.data["vault_version"]) for e in failed] == [("failure", 1)]
    assert token not in str(failed[0].data) and refresh not in str(failed[0].data)
    assert service in Service.objects.due_for_rotation() or service.rotation_policy != "interval"


@pytest.mark.parametrize("token_url", ["http://169.254.169.254/token", "https://[fd00:ec2::254]/token"])
def test_a_rotation_token_url_at_a_private_address_is_never_called(in_acme, token_url: str) -> None:  # type: ignore[no-untyped-def]
    service = make_service(
        {"access_token": unique_secret("at"), "refresh_token": unique_secret("rt")},
        service_type="oauth2",
        rotation_kind="oauth2_refresh",
        rotation_config={"token_url": token_url},
    )
    with pytest.raises(services.RotationError) as excinfo:
        _rotate(service)
    assert str(excinfo.value) == "The token endpoint could not be reached (blocked_address)."


# --- OAuth2 refresh against this server's own OAuth provider ------------------------------------------------------


@pytest.fixture
def committed_services() -> Iterator[list[int]]:
    """Services created through `commit_in_acme` (the live server's token endpoint writes audit events too, so
    these tests keep no lock open in the test transaction); deleted afterwards."""
    ids: list[int] = []
    yield ids
    for pk in ids:
        commit_in_acme(lambda pk=pk: services.delete_service(actor="tests", service=Service.objects.get(pk=pk)))


def _committed_oauth_service(ids: list[int], credentials: dict[str, str], token_url: str) -> Service:
    service = commit_in_acme(
        lambda: make_service(
            credentials,
            service_type="oauth2",
            rotation_kind="oauth2_refresh",
            rotation_config={"token_url": token_url},
        )
    )
    ids.append(service.pk)
    return service


def _committed_rotate(service: Service) -> services.RotationResult:
    try:
        return commit_in_acme(lambda: services.rotate_service(actor="tests", service_id=service.pk, force=True))
    finally:
        service.refresh_from_db()


def test_oauth2_refresh_rotation_against_our_own_provider(
    asgi_server: LiveServer,
    committed: Committed,  # noqa: F811
    committed_services: list[int],
    in_acme,  # type: ignore[no-untyped-def]
) -> None:
    issued = get_tokens(asgi_server, committed, "alice@acme.test", scope="openid offline_access read")
    token_url = f"{asgi_server.url}/t/acme/oauth/token"
    client_id = committed.client_ids["acme"]
    credentials = {"access_token": issued["access_token"], "refresh_token": issued["refresh_token"]}
    service = _committed_oauth_service(committed_services, {**credentials, "client_id": client_id}, token_url)
    assert _committed_rotate(service).version == 2
    second, _ = vault_value(service)
    assert second["access_token"] != issued["access_token"]
    assert second["refresh_token"] != issued["refresh_token"]  # the provider rotates refresh tokens: kept
    assert second["client_id"] == client_id
    # The new access token is a real one: the MCP endpoint accepts it.
    assert "list_my_repos" in mcp_list(f"{asgi_server.url}/t/acme/mcp/demo", second["access_token"])
    # The stored (rotated) refresh token is what the next rotation uses.
    assert _committed_rotate(service).version == 3
    third, _ = vault_value(service)
    assert third["refresh_token"] not in (second["refresh_token"], issued["refresh_token"])
    assert service.status == "active"


def test_oauth2_refresh_with_a_revoked_refresh_token_fails_cleanly(
    asgi_server: LiveServer,
    committed: Committed,  # noqa: F811
    committed_services: list[int],
    in_acme,  # type: ignore[no-untyped-def]
) -> None:
    credentials = {"access_token": unique_secret(), "refresh_token": unique_secret()}
    service = _committed_oauth_service(
        committed_services,
        {**credentials, "client_id": committed.client_ids["acme"]},
        f"{asgi_server.url}/t/acme/oauth/token",
    )
    with pytest.raises(services.RotationError, match=r"^The token endpoint answered 400 \(invalid_grant\)\.$"):
        _committed_rotate(service)
    assert service.vault_version == 1 and service.status == "rotation_failed"


# --- PostgreSQL through OpenBao's database secrets engine --------------------------------------------------------

DBNAME = "h6_services_rotation"
ROLE = "svc-reporting"


def _admin() -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True)


def _role_exists(name: str) -> bool:
    with _admin() as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None


@pytest.fixture
def database_engine(in_acme) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A dedicated database, and the tenant's database engine pointed at it with a role that may connect."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DBNAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DBNAME}"')
    vault.configure_database(
        "tenant_acme",
        connection="reporting",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{DBNAME}?sslmode=disable",
        username="postgres",
        password="unused-local-trust-auth",
        role=ROLE,
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            f'GRANT CONNECT ON DATABASE "{DBNAME}" TO "{{{{name}}}}";',
        ],
        revocation_statements=[
            f'REVOKE ALL ON DATABASE "{DBNAME}" FROM "{{{{name}}}}";',
            'DROP ROLE IF EXISTS "{{name}}";',
        ],
        default_ttl=600,
        max_ttl=3600,
    )
    yield DBNAME
    leases = vault.client().sys.list_leases(f"{vault.database_mount('tenant_acme')}/creds/{ROLE}/")
    for key in leases.get("data", {}).get("keys", []) if isinstance(leases, dict) else []:
        vault.revoke_lease("tenant_acme", f"{vault.database_mount('tenant_acme')}/creds/{ROLE}/{key}")
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DBNAME}" WITH (FORCE)')


def test_database_rotation_leases_new_credentials_and_revokes_the_old(
    database_engine: str,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    service = make_service(
        None,
        service_type="database",
        auth_type="none",
        rotation_kind="database",
        rotation_config={"role": ROLE},
        scopes=[],  # any authenticated user of acme (the reader below is the tenant admin)
    )
    assert _rotate(service).version == 1
    first, _ = vault_value(service)
    assert first["lease_id"].startswith(f"{vault.database_mount('tenant_acme')}/creds/{ROLE}/")
    assert _role_exists(first["username"])
    with psycopg.connect(
        host="127.0.0.1", port=5432, user=first["username"], password=first["password"], dbname=database_engine
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == first["username"]
    # Renewal of the lease works with the tenant's own credentials (sys/leases/renew/<its mount>/…).
    assert vault.renew_lease("tenant_acme", first["lease_id"]) > 0
    with django_capture_on_commit_callbacks(execute=True):
        assert _rotate(service).version == 2
    second, _ = vault_value(service)
    assert second["username"] != first["username"] and _role_exists(second["username"])
    assert not _role_exists(first["username"])  # the previous lease was revoked after the new one was current
    session = session_for(User.objects.get(email="admin@acme.test"))
    assert read_credentials(session, service.name)["credentials"]["username"] == second["username"]


def test_database_leases_are_renewed_between_rotations_and_reissued_when_they_cannot_be(
    database_engine: str,
    settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    service = make_service(
        None, service_type="database", auth_type="none", rotation_kind="database", rotation_config={"role": ROLE}
    )
    _rotate(service)
    first, _ = vault_value(service)
    settings.SERVICES_ROTATION_CHECK_INTERVAL = 300  # the role grants 600 s per renewal: enough for two checks
    assert services.renew_or_reissue_lease(actor="tests", service_id=service.pk) == "renewed"
    service.refresh_from_db()
    assert service.vault_version == 1 and _role_exists(first["username"])
    settings.SERVICES_ROTATION_CHECK_INTERVAL = 3600  # now a renewal cannot cover two checks: new credentials
    with django_capture_on_commit_callbacks(execute=True):
        assert services.renew_or_reissue_lease(actor="tests", service_id=service.pk) == "reissued"
    service.refresh_from_db()
    second, _ = vault_value(service)
    assert service.vault_version == 2 and second["username"] != first["username"]
    assert not _role_exists(first["username"]) and _role_exists(second["username"])


# --- Readers during rotation --------------------------------------------------------------------------------------


def test_a_tool_reading_during_rotations_never_fails(db) -> None:  # type: ignore[no-untyped-def]
    """Committed data, a reader thread and a rotating thread: every read returns a complete version."""
    name = f"Busy {uuid.uuid4().hex[:8]}"
    first = unique_secret()
    service = commit_in_acme(
        lambda: make_service(
            {"api_key": first}, name=name, scopes=[], service_type="api_key", rotation_kind="generated"
        )
    )
    with schema_context("tenant_acme"):
        reader = session_for(User.objects.get(email="admin@acme.test"))
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop() -> None:
        from django.db import connections

        try:
            while not stop.is_set():
                seen.append(read_credentials(reader, name)["credentials"]["api_key"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for _ in range(5):
            commit_in_acme(lambda: services.rotate_service(actor="tests", service_id=service.pk, force=True))
    finally:
        stop.set()
        thread.join()
    try:
        assert errors == []
        assert seen and all(len(value) in (len(first), 40) for value in seen)
        with schema_context("tenant_acme"):
            assert Service.objects.get(pk=service.pk).vault_version == 6
    finally:
        commit_in_acme(lambda: services.delete_service(actor="tests", service=Service.objects.get(pk=service.pk)))
    assert settings.SERVICES_CACHE_SECONDS <= 60
