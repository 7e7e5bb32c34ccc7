"""SVID files on disk: ``<dir>/{svid.crt, svid.key, ca.crt}``, written atomically and read as a matching pair.

Each file is written to a temporary file in the same directory, flushed, fsynced and renamed over the old
one, so a reader sees either the old or the new file, never a partial one. Everything is prepared before
the first rename, so a failure leaves the old files in place. The key is created with mode 0600 (the
directory 0700). Between the renames of svid.key and svid.crt a reader could see a new key with an old
certificate: `read_svid` checks that the pair matches and reads again until it does.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings

CERT_FILE = "svid.crt"
KEY_FILE = "svid.key"
BUNDLE_FILE = "ca.crt"
PLATFORM_DIR = "_platform"  # tenant slugs never start with "_"
_DIR_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,62}$")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.S)


class SvidFileError(Exception):
    """The SVID files are missing, unreadable or do not form a matching certificate/key pair."""


@dataclass(frozen=True)
class SvidFiles:
    """The paths of one identity's files."""

    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def bundle(self) -> Path:
        return self.directory / BUNDLE_FILE

    def exist(self) -> bool:
        return self.cert.is_file() and self.key.is_file() and self.bundle.is_file()


@dataclass(frozen=True)
class SvidMaterial:
    """One consistent read of the files (PEM text). `private_key` must never be logged or stored."""

    cert_chain_pem: str
    private_key_pem: str
    bundle_pem: str
    leaf: x509.Certificate


def svid_root() -> Path:
    return Path(settings.SVID_DIR)


def workload_files(tenant_slug: str, workload_name: str, root: Path | None = None) -> SvidFiles:
    """`<SVID_DIR>/<tenant>/<workload>/`, refusing names that could leave SVID_DIR."""
    for part in (tenant_slug, workload_name):
        if not _DIR_NAME.match(part):
            raise SvidFileError(f"{part!r} cannot be used as an SVID directory name.")
    return SvidFiles((root or svid_root()) / tenant_slug / workload_name)


def platform_files(root: Path | None = None) -> SvidFiles:
    """Where the platform's own identity (from the SPIRE agent) is written."""
    return SvidFiles((root or svid_root()) / PLATFORM_DIR)


def _write_atomic(path: Path, data: bytes, mode: int) -> Path:
    """Write `data` to a new temporary file beside `path` with `mode`; returns it (renamed later)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_svid(files: SvidFiles, cert_chain_pem: str, private_key_pem: str, bundle_pem: str) -> None:
    """Replace the three files; the old ones stay until every new file is complete on disk."""
    files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.directory, 0o700)
    staged: list[tuple[Path, Path]] = []
    try:
        # Bundle first (a new CA is trusted before certificates from it appear), then key, then certificate.
        staged.append((_write_atomic(files.bundle, _pem_text(bundle_pem), 0o644), files.bundle))
        staged.append((_write_atomic(files.key, _pem_text(private_key_pem), 0o600), files.key))
        staged.append((_write_atomic(files.cert, _pem_text(cert_chain_pem), 0o644), files.cert))
    except BaseException:
        for tmp, _target in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        os.replace(tmp, target)
    dir_fd = os.open(files.directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _pem_text(pem: str) -> bytes:
    return (pem.strip() + "\n").encode()


def pem_blocks(pem: str) -> list[str]:
    return _PEM_BLOCK.findall(pem)


def _matches(leaf: x509.Certificate, key_pem: bytes) -> bool:
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return key.public_key().public_bytes(encoding, public) == leaf.public_key().public_bytes(encoding, public)


def read_svid(files: SvidFiles, *, attempts: int = 20, pause: float = 0.05) -> SvidMaterial:
    """Read certificate chain, key and bundle, retrying while a renewal is between two renames."""
    last_error = "the files do not match"
    for _ in range(attempts):
        try:
            cert = files.cert.read_bytes()
            key = files.key.read_bytes()
            bundle = files.bundle.read_bytes()
        except FileNotFoundError:
            raise SvidFileError(f"No SVID at {files.directory} (svid.crt, svid.key and ca.crt are needed).") from None
        except OSError as exc:
            raise SvidFileError(f"Cannot read the SVID at {files.directory}: {exc.strerror}.") from None
        try:
            leaf = x509.load_pem_x509_certificate(cert)
            if _matches(leaf, key):
                return SvidMaterial(cert.decode(), key.decode(), bundle.decode(), leaf)
        except ValueError:
            last_error = "a file is not valid PEM"
        time.sleep(pause)
    raise SvidFileError(f"The SVID at {files.directory} is unusable: {last_error}.")


def spiffe_id_of(cert: x509.Certificate) -> str | None:
    """The single spiffe:// URI SAN of an X.509-SVID, or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.startswith("spiffe://")]
    return uris[0] if len(uris) == 1 else None
