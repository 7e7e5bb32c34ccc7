"""Fixtures of the SPIFFE tests: a private SVID_DIR, workloads in acme/globex, and a small mTLS echo server.

Everything is real: certificates come from the tenants' PKI in OpenBao, handshakes use Python's ssl over
TCP sockets on 127.0.0.1.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from tenants.models import Tenant
from workloads.models import Workload
from workloads.quickstart import PeerNotAllowedError, QuickStartSVID, check_peer
from workloads.services import issue_svid


@pytest.fixture(autouse=True)
def svid_dir(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    directory = tmp_path / "svids"
    settings.SVID_DIR = directory
    return directory


def make_workload(tenant: Tenant, name: str, path: str, *, ttl: int = 3600, issue: bool = True) -> Workload:
    """A workload of `tenant` (saved in its schema) with a first SVID from Vault unless `issue` is False."""
    with schema_context(tenant.schema_name):
        workload = Workload.objects.create(name=name, spiffe_path=path, ttl_seconds=ttl)
        if issue:
            workload = issue_svid(workload, actor="tests").workload
        return workload


def quickstart(tenant: Tenant, name: str) -> QuickStartSVID:
    from workloads.files import workload_files

    return QuickStartSVID(workload_files(tenant.slug, name))


@dataclass
class Handshake:
    """What the server saw of one connection."""

    peer_id: str | None = None
    refused: str | None = None
    error: str | None = None


@dataclass
class MtlsServer:
    """A threaded TLS server on 127.0.0.1: for each connection it completes the handshake, checks the peer
    against `allowed` (when given), answers with the peer's SPIFFE ID, and records what happened."""

    context: ssl.SSLContext
    allowed: list[str] | None = None
    seen: list[Handshake] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        seen = Handshake()
        raw.settimeout(5)
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                try:
                    seen.peer_id = (
                        check_peer(conn, self.allowed)
                        if self.allowed is not None
                        else QuickStartSVID.peer_spiffe_id(conn)
                    )
                except PeerNotAllowedError as exc:
                    seen.refused = str(exc)
                    return
                conn.recv(16)
                conn.sendall(f"hello {seen.peer_id}".encode())
        except (ssl.SSLError, OSError) as exc:
            seen.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.seen.append(seen)

    def last(self, count: int = 1, timeout: float = 5.0) -> Handshake:
        """The latest connection, once at least `count` connections have finished."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count, f"the server saw {len(self.seen)} connections, expected {count}"
        return self.seen[-1]

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)


def talk(port: int, context: ssl.SSLContext) -> tuple[str, int]:
    """Connect with `context`, say hello; returns (the server's answer, the serial of the server's cert)."""
    from cryptography import x509

    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as conn:
        serial = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True)).serial_number
        conn.sendall(b"hi")
        answer = conn.recv(200).decode()
    return answer, serial


@pytest.fixture
def mtls_server() -> Iterator[Callable[..., MtlsServer]]:
    servers: list[MtlsServer] = []

    def start(context: ssl.SSLContext, allowed: list[str] | None = None) -> MtlsServer:
        server = MtlsServer(context, allowed)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
