"""Real mTLS between workloads: Vault-issued SVIDs, Python ssl over TCP, SPIFFE IDs checked on an allow-list."""

from __future__ import annotations

import ssl

import pytest

from tenants.models import Tenant
from tests.workloads.conftest import make_workload, quickstart, talk
from workloads import PeerNotAllowedError, QuickStartSVID

pytestmark = pytest.mark.django_db

API, CLIENT = "spiffe://acme.authsec.local/billing/api", "spiffe://acme.authsec.local/billing/worker"


def test_two_workloads_of_one_tenant_complete_mtls_and_the_server_sees_the_client_id(acme: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(acme, "api", "/billing/api")
    make_workload(acme, "worker", "/billing/worker")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[CLIENT])

    answer, _serial = talk(server.port, quickstart(acme, "worker").create_ssl_context_for_client())

    assert answer == f"hello {CLIENT}"
    assert server.last().peer_id == CLIENT and server.last().refused is None


def test_the_client_checks_the_server_id_too(acme: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(acme, "api", "/billing/api")
    make_workload(acme, "worker", "/billing/worker")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server())
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        context = quickstart(acme, "worker").create_ssl_context_for_client()
        with context.wrap_socket(raw) as conn:
            assert QuickStartSVID.check_peer(conn, [API]) == API
            with pytest.raises(PeerNotAllowedError, match="not on the allow-list"):
                QuickStartSVID.check_peer(conn, ["spiffe://acme.authsec.local/payments/api"])


def test_a_workload_of_another_tenant_cannot_connect(acme: Tenant, globex: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(acme, "api", "/billing/api")
    make_workload(globex, "intruder", "/billing/worker")  # same path, other trust domain and CA
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[CLIENT])

    with pytest.raises((ssl.SSLError, ConnectionError)):
        talk(server.port, quickstart(globex, "intruder").create_ssl_context_for_client())

    assert server.last().peer_id is None
    assert "certificate verify failed" in (server.last().error or "") or "unknown ca" in (server.last().error or "")


def test_a_client_rejects_a_server_of_another_tenant(acme: Tenant, globex: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(globex, "api", "/billing/api")
    make_workload(acme, "worker", "/billing/worker")
    server = mtls_server(quickstart(globex, "api").create_ssl_context_for_server())

    with pytest.raises(ssl.SSLCertVerificationError):
        talk(server.port, quickstart(acme, "worker").create_ssl_context_for_client())


def test_a_peer_not_on_the_allow_list_is_refused(acme: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(acme, "api", "/billing/api")
    make_workload(acme, "reports", "/reports/batch")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[CLIENT])

    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        answer, _ = talk(server.port, quickstart(acme, "reports").create_ssl_context_for_client())
        assert answer, "the server closed the connection without an answer"

    assert server.last().refused == "Peer spiffe://acme.authsec.local/reports/batch is not on the allow-list."


def test_a_client_without_a_certificate_is_refused(acme: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    make_workload(acme, "api", "/billing/api")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[CLIENT])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=quickstart(acme, "api").ca_file_path)

    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        answer, _ = talk(server.port, context)
        assert answer

    assert server.last().peer_id is None and server.last().refused is None


def test_path_prefix_entries_allow_everything_under_them(acme: Tenant) -> None:
    from workloads.quickstart import _allowed

    assert _allowed(CLIENT, ["spiffe://acme.authsec.local/billing/*"])
    assert not _allowed("spiffe://acme.authsec.local/billing", ["spiffe://acme.authsec.local/billing/*"])
    assert not _allowed("spiffe://acme.authsec.local/billingx/a", ["spiffe://acme.authsec.local/billing/*"])
    assert not _allowed(CLIENT, [CLIENT + "/"])
