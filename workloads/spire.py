"""The SPIRE agent path: the platform's own identity from a Workload API socket, through py-spiffe.

`WorkloadApiIdentity` opens an `X509Source` on the socket (py-spiffe sends the ``workload.spiffe.io: true``
header and follows the agent's stream), writes the default SVID, its key and the bundle of its trust domain
to ``<SVID_DIR>/_platform/`` with the same atomic writes as Vault-issued SVIDs, and rewrites them on every
rotation the agent pushes. One instance per socket per process (`platform_identity`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spiffe import WorkloadApiClient, X509Source
from spiffe.errors import PySpiffeError
from spiffe.workloadapi.x509_context import X509Context

from workloads.files import SvidFiles, platform_files, write_svid

logger = logging.getLogger(__name__)


class WorkloadApiError(Exception):
    """The Workload API could not be reached or gave no usable SVID (message safe to show)."""


def normalize_socket(socket_path: str) -> str:
    """Accept a bare path (as the seed's examples pass it) as well as ``unix://`` and ``tcp://`` addresses."""
    socket_path = socket_path.strip()
    if socket_path.startswith("/"):
        return f"unix://{socket_path}"
    return socket_path


class WorkloadApiIdentity:
    """Keeps the platform's SVID files current from a Workload API stream until `close()`."""

    def __init__(self, socket_path: str, files: SvidFiles | None = None, *, timeout: float = 10.0) -> None:
        self.socket_path = normalize_socket(socket_path)
        self.files = files or platform_files()
        self._lock = threading.Lock()
        self.serial: int | None = None
        self.updates = 0
        self.last_error = ""
        try:
            self.source = X509Source(socket_path=self.socket_path, timeout_in_seconds=timeout)
        except PySpiffeError as exc:
            raise WorkloadApiError(f"The SPIFFE Workload API at {self.socket_path} gave no SVID: {exc}") from None
        self.source.subscribe_for_updates(self._write)
        self._write()
        if self.serial is None:
            self.close()
            raise WorkloadApiError(f"Could not write the SVID from {self.socket_path}: {self.last_error}")

    def _write(self) -> None:
        """Write the source's current SVID unless it is the one already on disk (called on every update)."""
        try:
            with self._lock:
                serial = write_context(self.source.get_x509_context(), self.files, skip_serial=self.serial)
                if serial is None:
                    return
                self.serial = serial
                self.updates += 1
                self.last_error = ""
            logger.info("platform SVID from the Workload API written (serial %x)", serial)
        except (PySpiffeError, WorkloadApiError, OSError) as exc:
            self.last_error = str(exc)
            logger.warning("platform SVID from %s not written: %s", self.socket_path, exc)

    @property
    def is_closed(self) -> bool:
        return self.source.is_closed()

    def close(self) -> None:
        self.source.unsubscribe_for_updates(self._write)
        self.source.close()


def write_context(context: X509Context, files: SvidFiles, *, skip_serial: int | None = None) -> int | None:
    """Write the default SVID of a Workload API context (chain, PKCS#8 key, bundle of its trust domain);
    returns its serial, or None when it is `skip_serial` (already on disk)."""
    svid = context.default_svid
    if svid.leaf.serial_number == skip_serial:
        return None
    bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    if bundle is None:
        raise WorkloadApiError(f"The agent sent no bundle for {svid.spiffe_id.trust_domain}.")
    pem = serialization.Encoding.PEM
    chain = "".join(cert.public_bytes(pem).decode() for cert in svid.cert_chain)
    key = svid.private_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    roots = "".join(cert.public_bytes(pem).decode() for cert in bundle.x509_authorities)
    write_svid(files, chain, key.decode(), roots)
    return svid.leaf.serial_number


def _serial_on_disk(files: SvidFiles) -> int | None:
    try:
        return x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number
    except (OSError, ValueError):
        return None


def sync_platform_svid(socket_path: str, *, timeout: float = 10.0) -> str:
    """One fetch from the Workload API (the renewal job's safety net for processes without a watcher):
    rewrite ``_platform/`` when the agent's SVID differs from the one on disk. Returns "updated"/"current"."""
    files = platform_files()
    client = WorkloadApiClient(normalize_socket(socket_path))
    try:
        context = client.fetch_x509_context(timeout=timeout)
        written = write_context(context, files, skip_serial=_serial_on_disk(files))
    except PySpiffeError as exc:
        raise WorkloadApiError(
            f"The SPIFFE Workload API at {normalize_socket(socket_path)} gave no SVID: {exc}"
        ) from None
    finally:
        client.close()
    return "current" if written is None else "updated"


_registry: dict[tuple[str, Path], WorkloadApiIdentity] = {}
_registry_lock = threading.Lock()


def platform_identity(socket_path: str, *, timeout: float = 10.0) -> WorkloadApiIdentity:
    """The process-wide watcher of `socket_path` (started on first use, restarted if its stream died)."""
    files = platform_files()
    key = (normalize_socket(socket_path), files.directory)
    with _registry_lock:
        current = _registry.get(key)
        if current is not None and not current.is_closed:
            return current
        identity = WorkloadApiIdentity(socket_path, files, timeout=timeout)
        _registry[key] = identity
        return identity


def close_all() -> None:
    """Stop every watcher of this process (tests, shutdown)."""
    with _registry_lock:
        identities = list(_registry.values())
        _registry.clear()
    for identity in identities:
        identity.close()
