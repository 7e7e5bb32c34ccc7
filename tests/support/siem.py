"""Real SIEM receivers for the audit-stream tests: a test CA made at run time, a TCP/TLS syslog server that reads
octet-counted RFC 5424 frames, and an HTTPS server for webhooks (checks the HMAC) and OTLP/HTTP logs (decodes the
protobuf with opentelemetry-proto). Each listens on a free loopback port and can be stopped and started again on
the same port, to make an outage."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.support.live import free_port


class SiemCA:
    """A CA and a server certificate for 127.0.0.1 and localhost, made fresh for the test session."""

    def __init__(self, name: str = "AuthSec test SIEM CA") -> None:
        now = dt.datetime.now(dt.UTC)
        self._dir = Path(tempfile.mkdtemp(prefix="authsec-siem-ca-"))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
        self._chain = self._dir / "server.pem"
        self._key = self._dir / "server.key"
        self._chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._chain, self._key)
        return context


def parse_frames(data: bytes) -> list[bytes]:
    """Split octet-counted frames (``LEN SP MSG``); a malformed stream raises."""
    frames = []
    while data:
        length, space, rest = data.partition(b" ")
        assert space and length.isdigit(), f"not an octet-counted frame: {data[:40]!r}"
        size = int(length)
        assert len(rest) >= size, "a frame was cut short"
        frames.append(rest[:size])
        data = rest[size:]
    return frames


class SyslogReceiver:
    """A syslog server over TCP (or TLS with `tls`): reads each connection to its end, keeps its frames, closes.

    Modes: "ok"; "reset" (read the batch, then drop the connection with a reset, keeping nothing: a receiver
    that crashed mid-batch); "hang" (accept, never read, never close: a stuck receiver)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.mode = "ok"
        self.messages: list[bytes] = []
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> SyslogReceiver:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); then close
            self._listener.close()
            self._listener = None
        for conn in self._held:
            conn.close()
        self._held.clear()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        if self.mode == "hang":
            self._held.append(conn)
            return
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            data = bytearray()
            while chunk := conn.recv(65536):
                data += chunk
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            with self._lock:
                self.messages.extend(parse_frames(bytes(data)))
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()


class HTTPSReceiver:
    """An HTTPS server: ``/hook`` takes signed webhook batches (bad signatures answer 401 and are counted),
    ``/v1/logs`` takes OTLP logs (protobuf or JSON). `status` is what it answers (503 makes an outage)."""

    def __init__(self, ca: SiemCA, secret: str = "") -> None:
        self.port = free_port()
        self.ca = ca
        self.secret = secret
        self.status = 200
        self.batches: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.otlp: list[ExportLogsServiceRequest] = []
        self.otlp_json: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> HTTPSReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

            def do_POST(self) -> None:  # noqa: N802 - the base class's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests += 1
                status = receiver.take(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.socket = self.ca.server_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.status >= 300:
            return self.status
        if path == "/hook":
            # As a receiver should: the signature over "<timestamp>.<body>", and a fresh timestamp.
            timestamp = headers.get("X-AuthSec-Timestamp", "")
            given = headers.get("X-AuthSec-Signature", "")
            if not hmac.compare_digest(given, "sha256=" + _hmac_hex(self.secret, timestamp, body)):
                self.bad_signatures += 1
                return 401
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
                return 401
            self.batches.append(json.loads(body))
            self.headers.append(headers)
            return 200
        if path == "/v1/logs":
            if headers.get("Content-Type") == "application/x-protobuf":
                self.otlp.append(ExportLogsServiceRequest.FromString(body))
            else:
                self.otlp_json.append(json.loads(body))
            self.headers.append(headers)
            return 200
        return 404

    def events(self) -> list[dict[str, Any]]:
        """Every webhook event received, in arrival order (repeats of a resent batch included)."""
        return [event for batch in self.batches for event in batch["events"]]


def _hmac_hex(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
