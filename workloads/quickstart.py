"""`QuickStartSVID`: the seed's API for tool code, on top of the SVID files this server keeps current.

    svid = await QuickStartSVID.initialize(workload="billing-api")   # a workload of the current tenant
    svid = await QuickStartSVID.initialize(socket_path="/run/spire/sockets/agent.sock")  # SPIRE agent
    svid = await QuickStartSVID.initialize()   # None unless SPIFFE_ENDPOINT_SOCKET is set

Properties read the files on every access, so a renewal is seen at once; SSL contexts are built from a
matching certificate/key pair, and the server context switches to renewed files at the next handshake.
"""

from __future__ import annotations

import hmac
import os
import ssl
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from cryptography import x509
from django.conf import settings

from workloads.files import SvidFileError, SvidFiles, platform_files, read_svid, spiffe_id_of, workload_files


class SpiffeDisabledError(RuntimeError):
    """SPIFFE is off for this caller: no agent socket configured and no workload named (or it is disabled)."""


class SpiffeUnavailableError(RuntimeError):
    """SPIFFE is on but no usable SVID could be obtained (agent unreachable, Vault down and no files yet)."""


class PeerNotAllowedError(PermissionError):
    """The peer presented no SPIFFE ID, or one that is not on the allow-list."""


def peer_spiffe_id(peer: Any) -> str | None:
    """The SPIFFE ID of a TLS peer: an `ssl.SSLSocket`/`SSLObject`, an asyncio transport, DER bytes or a cert."""
    if hasattr(peer, "get_extra_info"):  # asyncio transport / StreamWriter
        peer = peer.get_extra_info("ssl_object")
    if isinstance(peer, ssl.SSLSocket | ssl.SSLObject):
        peer = peer.getpeercert(binary_form=True)
    if isinstance(peer, bytes | bytearray):
        peer = x509.load_der_x509_certificate(bytes(peer))
    if isinstance(peer, x509.Certificate):
        return spiffe_id_of(peer)
    return None


def _allowed(spiffe_id: str, allowed: Iterable[str]) -> bool:
    ok = False
    for entry in allowed:
        if entry.endswith("/*"):  # every ID under a path, e.g. "spiffe://acme.authsec.local/billing/*"
            ok |= spiffe_id.startswith(entry[:-1]) and len(spiffe_id) > len(entry) - 1
        else:
            ok |= hmac.compare_digest(spiffe_id.encode(), entry.encode())
    return ok


def check_peer(peer: Any, allowed: Iterable[str]) -> str:
    """Return the peer's SPIFFE ID if it is on `allowed` (exact IDs, or prefixes ending in "/*"); otherwise
    raise `PeerNotAllowedError`. Call it right after the handshake and close the connection when it raises."""
    allowed = list(allowed)
    if not allowed:
        raise PeerNotAllowedError("No SPIFFE ID is allowed: the allow-list is empty.")
    spiffe_id = peer_spiffe_id(peer)
    if spiffe_id is None:
        raise PeerNotAllowedError("The peer presented no X.509-SVID (no single spiffe:// URI SAN).")
    if not _allowed(spiffe_id, allowed):
        raise PeerNotAllowedError(f"Peer {spiffe_id} is not on the allow-list.")
    return spiffe_id


class QuickStartSVID:
    """An X.509-SVID on disk (cert, key, bundle) with helpers for mTLS. Build it with `initialize`."""

    def __init__(self, files: SvidFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._server_context: tuple[tuple[int, ...], ssl.SSLContext] | None = None

    # --- construction ---

    @classmethod
    async def initialize(
        cls,
        client_id: str | None = None,
        socket_path: str | None = None,
        *,
        workload: str | None = None,
        tenant: str | None = None,
        raise_on_disabled: bool = False,
        timeout: float = 10.0,
    ) -> QuickStartSVID | None:
        """The SVID of `workload` (a workload of `tenant`, by default the current tenant) or, without a workload,
        the platform's identity from the SPIRE agent at `socket_path` / SPIFFE_ENDPOINT_SOCKET.

        Returns None when SPIFFE is off for the caller (raises `SpiffeDisabledError` with `raise_on_disabled`);
        raises `SpiffeUnavailableError` when it is on but no SVID can be had. `client_id` is accepted for
        compatibility with the seed's SDK; this server has no SDK-manager hop, so it changes nothing."""
        try:
            if workload:
                files = await sync_to_async(_workload_svid, thread_sensitive=True)(workload, tenant)
            else:
                socket = socket_path or settings.SPIFFE_ENDPOINT_SOCKET
                if not socket:
                    raise SpiffeDisabledError(
                        "SPIFFE is not enabled: pass workload=… or socket_path=…, or set SPIFFE_ENDPOINT_SOCKET."
                    )
                files = await sync_to_async(_agent_svid, thread_sensitive=False)(socket, timeout)
        except SpiffeDisabledError:
            if raise_on_disabled:
                raise
            return None
        svid = cls(files)
        svid._material()  # fail now, not at first use, when the files are unusable
        return svid

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str]) -> QuickStartSVID:
        """An SVID from files already on disk (e.g. written by this server on another host's shared volume)."""
        svid = cls(SvidFiles(Path(directory)))
        svid._material()
        return svid

    # --- the seed's properties ---

    def _material(self) -> Any:
        try:
            return read_svid(self._files)
        except SvidFileError as exc:
            raise SpiffeUnavailableError(str(exc)) from None

    @property
    def spiffe_id(self) -> str:
        spiffe_id = spiffe_id_of(self._material().leaf)
        if spiffe_id is None:
            raise SpiffeUnavailableError(f"The certificate at {self.cert_file_path} has no SPIFFE ID.")
        return spiffe_id

    @property
    def cert_file_path(self) -> Path:
        return self._files.cert

    @property
    def key_file_path(self) -> Path:
        return self._files.key

    @property
    def ca_file_path(self) -> Path:
        return self._files.bundle

    @property
    def certificate(self) -> str:
        """The certificate chain (leaf first), PEM."""
        return self._material().cert_chain_pem

    @property
    def private_key(self) -> str:
        """The private key, PEM (PKCS#8). Keep it in memory; never log it."""
        return self._material().private_key_pem

    @property
    def trust_bundle(self) -> str:
        """The CA certificates of the trust domain, PEM."""
        return self._material().bundle_pem

    @property
    def not_after(self) -> Any:
        return self._material().leaf.not_valid_after_utc

    # --- SSL contexts ---

    def _new_context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        """A context with a matching cert/key pair and the current bundle; retried while a renewal is between
        two renames (OpenSSL refuses a key that does not match the certificate)."""
        last: Exception | None = None
        for _ in range(40):
            context = ssl.SSLContext(
                ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
            )
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            # SVIDs carry no DNS names: the peer is identified by its SPIFFE ID (`check_peer`), not a host name.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_REQUIRED
            try:
                context.load_cert_chain(self._files.cert, self._files.key)
                context.load_verify_locations(cadata=self._files.bundle.read_text())
                return context
            except FileNotFoundError as exc:
                raise SpiffeUnavailableError(
                    f"No SVID at {self._files.directory}: {exc.filename} is missing."
                ) from None
            except (ssl.SSLError, ValueError) as exc:
                last = exc
                time.sleep(0.05)
        raise SpiffeUnavailableError(f"The SVID at {self._files.directory} is unusable: {last}")

    def create_ssl_context_for_client(self) -> ssl.SSLContext:
        """Client side of mTLS: presents this SVID, trusts only this trust domain's bundle."""
        return self._new_context(ssl.Purpose.SERVER_AUTH)

    def create_ssl_context_for_server(self) -> ssl.SSLContext:
        """Server side of mTLS: client certificates are required and must chain to the bundle. The context
        follows renewals: each handshake switches to a context built from the current files."""
        context = self._current_server_context()
        context.sni_callback = self._switch_context
        return context

    def _stamp(self) -> tuple[int, ...]:
        stamp: list[int] = []
        for path in (self._files.cert, self._files.key, self._files.bundle):
            info = path.stat()
            stamp += [info.st_ino, info.st_mtime_ns, info.st_size]
        return tuple(stamp)

    def _current_server_context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._stamp()
            except FileNotFoundError:
                stamp = ()
            if self._server_context is not None and (not stamp or self._server_context[0] == stamp):
                return self._server_context[1]
            try:
                context = self._new_context(ssl.Purpose.CLIENT_AUTH)
            except SpiffeUnavailableError:
                if self._server_context is not None:  # keep serving with the previous SVID
                    return self._server_context[1]
                raise
            context.sni_callback = self._switch_context
            self._server_context = (stamp, context)
            return context

    def _switch_context(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        fresh = self._current_server_context()
        if fresh is not context:
            ssl_object.context = fresh

    # --- peers ---

    @staticmethod
    def check_peer(peer: Any, allowed: Iterable[str]) -> str:
        """The peer's SPIFFE ID if it is on `allowed`, else `PeerNotAllowedError` (see module `check_peer`)."""
        return check_peer(peer, allowed)

    @staticmethod
    def peer_spiffe_id(peer: Any) -> str | None:
        return peer_spiffe_id(peer)

    def __repr__(self) -> str:
        return f"<QuickStartSVID {self._files.directory}>"


def _workload_svid(name: str, tenant_slug: str | None) -> SvidFiles:
    """Files of a workload, issuing its first SVID when there is none on disk yet (sync: ORM and Vault)."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from tenants.models import Tenant
    from workloads.models import Workload
    from workloads.services import SvidIssueError, issue_svid

    if tenant_slug is None:
        current = getattr(connection, "tenant", None)
        if current is None or connection.schema_name == "public":
            raise SpiffeDisabledError("No tenant: pass tenant=… or call from inside a tenant request.")
        tenant_slug = current.slug
    tenant = Tenant.objects.filter(slug=tenant_slug, is_active=True).first()
    if tenant is None:
        raise SpiffeDisabledError(f"No active tenant {tenant_slug!r}.")
    with schema_context(tenant.schema_name):
        row = Workload.objects.filter(name=name).first()
        if row is None or not row.is_enabled:
            raise SpiffeDisabledError(f"Workload {name!r} is not registered and enabled in tenant {tenant_slug}.")
        files = workload_files(tenant.slug, row.name)
        if not files.exist():
            try:
                issue_svid(row, actor="system:quickstart", only_if_due=True)
            except SvidIssueError as exc:
                raise SpiffeUnavailableError(str(exc)) from None
    return files


def _agent_svid(socket_path: str, timeout: float) -> SvidFiles:
    from workloads.spire import WorkloadApiError, platform_identity

    try:
        return platform_identity(socket_path, timeout=timeout).files
    except WorkloadApiError as exc:
        raise SpiffeUnavailableError(str(exc)) from None


__all__ = [
    "PeerNotAllowedError",
    "QuickStartSVID",
    "SpiffeDisabledError",
    "SpiffeUnavailableError",
    "check_peer",
    "peer_spiffe_id",
    "platform_files",
]
