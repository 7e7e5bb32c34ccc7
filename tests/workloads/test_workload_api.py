"""The SPIRE agent path, against a Workload API server built here on py-spiffe's gRPC stubs (a SPIRE agent
cannot be installed on these machines). Like a real agent it serves a unix socket, refuses calls without the
``workload.spiffe.io: true`` header, and streams X.509-SVIDs — real ones, issued by acme's CA in OpenBao —
pushing a new one at each rotation. Our code consumes it through py-spiffe's `X509Source`."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spiffe._proto import workload_pb2, workload_pb2_grpc

from authsec_site.lib import vault
from tenants.models import Tenant
from tests.workloads.conftest import make_workload, quickstart, talk
from workloads import QuickStartSVID, SpiffeDisabledError, SpiffeUnavailableError
from workloads.spire import close_all

pytestmark = pytest.mark.django_db
PLATFORM_ID = "spiffe://acme.authsec.local/authsec/platform"


def _der(pem: str) -> bytes:
    return b"".join(
        cert.public_bytes(serialization.Encoding.DER) for cert in x509.load_pem_x509_certificates(pem.encode())
    )


def issue_from_vault(schema: str) -> tuple[workload_pb2.X509SVID, int]:
    """A real X.509-SVID from the tenant's OpenBao PKI, in the Workload API's DER encoding; and its serial."""
    issued = vault.pki_issue_svid(schema, "acme.authsec.local", PLATFORM_ID, 300)
    key = serialization.load_pem_private_key(issued["private_key"].encode(), password=None)
    message = workload_pb2.X509SVID(
        spiffe_id=PLATFORM_ID,
        x509_svid=_der(issued["certificate"]),
        x509_svid_key=key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        bundle=_der("\n".join(issued["ca_chain"])),
    )
    return message, int(issued["serial_number"].replace(":", ""), 16)


class FakeAgent(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """FetchX509SVID as a SPIRE agent serves it: header check, then one response per rotation."""

    def __init__(self, socket_path: Path, svid: workload_pb2.X509SVID) -> None:
        self.socket_path = socket_path
        self._cond = threading.Condition()
        self._svid, self._version, self.calls = svid, 0, 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix:{socket_path}")
        self._server.start()

    def FetchX509SVID(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802 - gRPC method name
        if dict(context.invocation_metadata()).get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        self.calls += 1
        sent = -1
        while context.is_active():
            with self._cond:
                self._cond.wait_for(lambda sent=sent: self._version != sent, timeout=0.2)
                if self._version == sent:
                    continue
                sent, svid = self._version, self._svid
            yield workload_pb2.X509SVIDResponse(svids=[svid])

    def rotate(self, svid: workload_pb2.X509SVID) -> None:
        with self._cond:
            self._svid, self._version = svid, self._version + 1
            self._cond.notify_all()

    def stop(self) -> None:
        self._server.stop(grace=0)


@pytest.fixture
def agent(acme: Tenant) -> Iterator[tuple[FakeAgent, int]]:
    directory = Path(tempfile.mkdtemp(prefix="spire-"))  # short: unix socket paths are limited to ~107 bytes
    svid, serial = issue_from_vault(acme.schema_name)
    fake = FakeAgent(directory / "agent.sock", svid)
    try:
        yield fake, serial
    finally:
        close_all()
        fake.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _serial_on_disk(svid: QuickStartSVID) -> int:
    return x509.load_pem_x509_certificate(svid.cert_file_path.read_bytes()).serial_number


def wait_until(check, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_platform_identity_is_fetched_written_and_kept_current(acme: Tenant, agent, svid_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, first_serial = agent
    svid = asyncio.run(QuickStartSVID.initialize(socket_path=str(fake.socket_path)))  # a bare path, as the seed

    assert svid is not None and svid.spiffe_id == PLATFORM_ID
    assert svid.cert_file_path == svid_dir / "_platform" / "svid.crt"
    assert oct(svid.key_file_path.stat().st_mode & 0o777) == "0o600"
    assert _serial_on_disk(svid) == first_serial
    assert "BEGIN PRIVATE KEY" in svid.private_key and svid.trust_bundle.strip() in vault.pki_ca_pem(
        acme.schema_name, "acme.authsec.local"
    )

    for _ in range(2):  # the agent rotates: the files follow, with no call from us
        new, new_serial = issue_from_vault(acme.schema_name)
        fake.rotate(new)
        assert wait_until(lambda s=new_serial: _serial_on_disk(svid) == s), "the rotated SVID was not written"
    assert svid.spiffe_id == PLATFORM_ID
    assert fake.calls == 1, "one stream, kept open: rotations arrive on it"


def test_the_platform_identity_talks_mtls_with_a_tenant_workload(acme: Tenant, agent, mtls_server) -> None:  # type: ignore[no-untyped-def]
    fake, _serial = agent
    make_workload(acme, "api", "/billing/api")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[PLATFORM_ID])
    platform = asyncio.run(QuickStartSVID.initialize(socket_path=f"unix://{fake.socket_path}"))

    answer, _ = talk(server.port, platform.create_ssl_context_for_client())

    assert answer == f"hello {PLATFORM_ID}"


def test_spiffe_endpoint_socket_setting_enables_the_agent_path(acme: Tenant, agent, settings) -> None:  # type: ignore[no-untyped-def]
    fake, serial = agent
    settings.SPIFFE_ENDPOINT_SOCKET = f"unix://{fake.socket_path}"
    svid = asyncio.run(QuickStartSVID.initialize())
    assert svid is not None and _serial_on_disk(svid) == serial


def test_the_fake_agent_requires_the_security_header_like_spire(agent) -> None:  # type: ignore[no-untyped-def]
    fake, _serial = agent
    with grpc.insecure_channel(f"unix:{fake.socket_path}") as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=5))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = next(
            stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=[("workload.spiffe.io", "true")], timeout=5)
        )
        assert reply.svids[0].spiffe_id == PLATFORM_ID


def test_an_unreachable_agent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpiffeUnavailableError, match="Workload API at unix:///nonexistent/agent.sock"):
        asyncio.run(QuickStartSVID.initialize(socket_path="/nonexistent/agent.sock", timeout=1))


def test_without_socket_or_workload_spiffe_is_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SPIFFE_ENDPOINT_SOCKET = ""
    assert asyncio.run(QuickStartSVID.initialize()) is None
    with pytest.raises(SpiffeDisabledError, match="SPIFFE is not enabled"):
        asyncio.run(QuickStartSVID.initialize(raise_on_disabled=True))


def test_the_renewal_job_refreshes_the_platform_identity_without_a_watcher(acme: Tenant, agent, settings) -> None:  # type: ignore[no-untyped-def]
    from workloads.files import platform_files
    from workloads.tasks import renew_due_svids

    fake, serial = agent
    settings.SPIFFE_ENDPOINT_SOCKET = str(fake.socket_path)
    files = platform_files()

    renew_due_svids.apply().get()
    assert x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number == serial
    new, new_serial = issue_from_vault(acme.schema_name)
    fake.rotate(new)
    renew_due_svids.apply().get()
    assert x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number == new_serial


def test_spiffe_watch_needs_a_socket(settings) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import CommandError, call_command

    settings.SPIFFE_ENDPOINT_SOCKET = ""
    with pytest.raises(CommandError, match="No Workload API socket"):
        call_command("spiffe_watch")
