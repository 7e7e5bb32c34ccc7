"""ServiceAccessSDK: the DB-backed access check, audited reads, clear errors, a short version-keyed cache."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import override_settings

from audit.models import AuditEvent
from authsec_site.lib import vault
from rbac import services as rbac_services
from rbac.models import Role
from services import services
from services.models import Service
from services.sdk import (
    ServiceAccessDenied,
    ServiceAccessError,
    ServiceAccessSDK,
    ServiceNotFound,
    ServiceUnavailable,
    read_credentials,
)
from tests.support.services import make_service, session_for, unique_secret

pytestmark = pytest.mark.django_db


def _events(service: Service) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type="services.service", target_id=str(service.pk)).order_by("seq"))


def test_alice_with_scope_read_gets_the_credentials_and_the_read_is_audited(demo_users) -> None:  # type: ignore[no-untyped-def]
    token = unique_secret("ghp")
    service = make_service({"access_token": token}, name="GitHub API Integration", metadata={"org": "acme"})
    session = session_for(demo_users["alice"])
    details = read_credentials(session, "GitHub API Integration")
    assert set(details) == {
        "service_id", "service_name", "service_type", "auth_type", "url", "credentials", "metadata", "retrieved_at"
    }  # fmt: skip
    assert details["credentials"] == {"access_token": token}
    assert details["service_name"] == "GitHub API Integration"
    assert details["service_type"] == "bearer_token" and details["auth_type"] == "bearer"
    assert details["url"] == "https://api.example.test" and details["metadata"] == {"org": "acme"}
    read = [e for e in _events(service) if e.action == "service.read"]
    assert len(read) == 1
    assert read[0].outcome == "allow" and read[0].actor_label == "alice@acme.test"
    assert read[0].data == {
        "service": "GitHub API Integration",
        "tool": "list_my_repos",
        "application": "demo",
        "vault_version": 1,
    }
    assert read[0].tool == "list_my_repos" and read[0].request_id == session.request_id


def test_get_service_token_returns_the_access_token(demo_users) -> None:  # type: ignore[no-untyped-def]
    token = unique_secret("ghp")
    make_service({"access_token": token}, name="Token service")
    sdk = ServiceAccessSDK(session_for(demo_users["alice"]))
    # The SDK reads in a worker thread with its own connection: run the sync core here (uncommitted data).
    details = read_credentials(sdk.session, "Token service")
    assert details["credentials"]["access_token"] == token


def test_carol_without_read_is_denied_and_the_denial_is_audited(demo_users) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"access_token": unique_secret()}, name="Scoped")
    # The session *claims* read: the check uses carol's grants from the database, not these lists.
    session = session_for(demo_users["carol"], scopes=["read"], roles=["admin"])
    with pytest.raises(ServiceAccessDenied) as excinfo:
        read_credentials(session, "Scoped")
    assert str(excinfo.value) == 'You are not permitted to use the service "Scoped".'
    denied = [e for e in _events(service) if e.action == "service.read"]
    assert [(e.outcome, e.actor_label) for e in denied] == [("deny", "carol@acme.test")]
    assert denied[0].data["reason"] == "denied: needs any of scopes [read]"


def test_a_revoked_role_stops_counting_on_the_next_read(demo_users, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    make_service({"access_token": unique_secret()}, name="Admins only", scopes=[], roles=["admin"])
    alice = demo_users["alice"]
    assert read_credentials(session_for(alice), "Admins only")["service_name"] == "Admins only"
    with django_capture_on_commit_callbacks(execute=True):  # the grants cache is invalidated after commit
        rbac_services.revoke_role(actor="tests", role=Role.objects.get(name="admin"), user=alice)
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(alice), "Admins only")


def test_require_all_uses_the_engine_semantics(demo_users) -> None:  # type: ignore[no-untyped-def]
    make_service(
        {"api_key": unique_secret()},
        name="Vault of secrets",
        service_type="api_key",
        scopes=["admin"],
        resources=["production", "sensitive-data"],
        require_all=True,
    )
    # dave (superuser: scope admin, both resources) passes; carol has production but not sensitive-data.
    assert read_credentials(session_for(demo_users["dave"]), "Vault of secrets")["service_type"] == "api_key"
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(demo_users["carol"]), "Vault of secrets")


@pytest.mark.parametrize("email", ["dave", "alice", "bob", "carol"])
def test_require_all_denies_whoever_misses_a_list(demo_users, email: str) -> None:  # type: ignore[no-untyped-def]
    make_service(
        {"api_key": unique_secret()},
        name="Prod DB",
        service_type="api_key",
        scopes=["write"],
        resources=["production", "sensitive-data"],
        require_all=True,
    )
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(demo_users[email]), "Prod DB")


def test_unknown_service_is_a_clear_not_found(demo_users) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceNotFound) as excinfo:
        read_credentials(session_for(demo_users["alice"]), "Nope")
    assert str(excinfo.value) == 'The service "Nope" is not configured for this tenant.'
    assert issubclass(ServiceNotFound, ServiceAccessError)


def test_anonymous_and_public_sessions_are_denied(demo_users) -> None:  # type: ignore[no-untyped-def]
    make_service({"access_token": unique_secret()}, name="Open", scopes=[])
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(None), "Open")
    forged = session_for(demo_users["alice"])
    forged.user_info = {"user_id": 999_999, "email": "ghost@acme.test"}
    with pytest.raises(ServiceAccessDenied):
        read_credentials(forged, "Open")
    public = session_for(demo_users["alice"])
    public.schema_name = "public"
    with pytest.raises(ServiceAccessDenied, match="inside a tenant"):
        read_credentials(public, "Open")
    # No lists at all: any authenticated user of the tenant (the seed's semantics).
    assert read_credentials(session_for(demo_users["carol"]), "Open")["service_name"] == "Open"


def test_disabled_service_and_missing_secret(demo_users) -> None:  # type: ignore[no-untyped-def]
    make_service({"access_token": unique_secret()}, name="Off", is_enabled=False)
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(demo_users["alice"]), "Off")
    make_service(None, name="Empty")
    with pytest.raises(ServiceUnavailable, match="no credentials stored yet"):
        read_credentials(session_for(demo_users["alice"]), "Empty")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vault_down_is_service_unavailable_and_audited(demo_users) -> None:  # type: ignore[no-untyped-def]
    service = make_service({"access_token": unique_secret()}, name="Down")
    with override_settings(VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TIMEOUT=1):
        vault.reset_client()
        with pytest.raises(ServiceUnavailable) as excinfo:
            read_credentials(session_for(demo_users["alice"]), "Down")
    vault.reset_client()
    assert "credential store is unavailable" in str(excinfo.value)
    assert "127.0.0.1" not in str(excinfo.value)  # no infrastructure details to an MCP client
    failed = [e for e in _events(service) if e.action == "service.read"]
    assert [(e.outcome, e.data["reason"]) for e in failed] == [("failure", "vault unreachable")]


def test_cache_is_short_and_dropped_on_rotation(demo_users) -> None:  # type: ignore[no-untyped-def]
    first = unique_secret()
    service = make_service({"access_token": first}, name="Cached")
    session = session_for(demo_users["alice"])
    assert read_credentials(session, "Cached")["credentials"]["access_token"] == first
    # Cached by version: a read inside the TTL does not need Vault at all.
    with override_settings(VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TIMEOUT=1):
        vault.reset_client()
        assert read_credentials(session, "Cached")["credentials"]["access_token"] == first
    vault.reset_client()
    second = unique_secret()
    services.replace_secret(actor="tests", service=service, credentials={"access_token": second})
    assert read_credentials(session, "Cached")["credentials"]["access_token"] == second
    with override_settings(SERVICES_CACHE_SECONDS=0, VAULT_ADDR=f"http://127.0.0.1:{_closed_port()}", VAULT_TIMEOUT=1):
        vault.reset_client()
        from services.sdk import drop_cached

        drop_cached("tenant_acme")
        with pytest.raises(ServiceUnavailable):
            read_credentials(session, "Cached")


def test_the_async_api_maps_to_the_same_core(in_acme) -> None:  # type: ignore[no-untyped-def]
    """The async methods run in a worker thread (own DB connection): unknown names fail the same way there.
    (Reads of committed services through the async API are covered end to end in test_list_my_repos.)"""
    sdk = ServiceAccessSDK(session_for(None))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        try:
            with pytest.raises(ServiceNotFound):
                await sdk.get_service_token("Does not exist anywhere")
        finally:
            await loop.run_in_executor(None, connections.close_all)  # the worker thread's own connection

    asyncio.run(main())


def test_a_token_narrowed_to_fewer_scopes_narrows_service_reads(demo_users) -> None:  # type: ignore[no-untyped-def]
    """The MCP endpoint passes a bearer token's narrowed scopes in user_info: they can only narrow."""
    make_service({"access_token": unique_secret()}, name="Narrowed")
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(demo_users["alice"], scopes=["write"]), "Narrowed")  # no read in the token
    assert read_credentials(session_for(demo_users["alice"], scopes=["read"]), "Narrowed")["service_name"] == "Narrowed"
