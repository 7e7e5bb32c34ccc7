"""Syslog: RFC 5424 messages, octet-counted (RFC 6587 / RFC 5425 framing), over TCP or TLS.

Syslog has no application-level acknowledgement, so one connection carries one batch: the messages, then our
side closed for writing, then we wait for the receiver to close its side. A batch counts as accepted only when
the receiver closed the connection in order after reading it (rsyslog, syslog-ng and Logstash close when their
peer does); a refused or reset connection or a timeout fails the batch, and it is sent again.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from audit.models import AuditSink
from audit.streaming.net import DeliveryError, addresses, tls_context

FACILITY = 13  # "log audit" (RFC 5424, table 1)
SEVERITY = {"success": 5, "allow": 5, "deny": 4, "failure": 4}  # notice; warning
APP_NAME = "authsec"
# Structured data: our SD-ID carries the chain position for parsers that do not read the JSON message. 32473 is
# the enterprise number RFC 5612 reserves for documentation and examples (AuthSec has none of its own).
SD_ID = "authsec@32473"
BOM = "\ufeff"


def _hostname() -> str:
    return urlsplit(settings.AUTHSEC_PUBLIC_URL).hostname or "-"


def _sd_value(value: Any) -> str:
    """A PARAM-VALUE: `"`, `\\` and `]` escaped (RFC 5424 §6.3.3)."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(text: str, limit: int) -> str:
    """PRINTUSASCII only (the header fields), at most `limit` characters, "-" when empty."""
    cleaned = "".join(ch for ch in text if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


def format_message(document: dict[str, Any]) -> bytes:
    """One RFC 5424 message: header, our structured data, then the JSON document as a UTF-8 MSG (with BOM)."""
    pri = FACILITY * 8 + SEVERITY.get(document["outcome"], 5)
    timestamp = document["created_at"].replace("+00:00", "Z")
    params = {
        "tenant": document["tenant"],
        "seq": document["seq"],
        "hash": document["hash"],
        "prevHash": document["prev_hash"],
        "outcome": document["outcome"],
        "requestId": document["request_id"],
        "traceId": document["trace_id"] or "",
    }
    sd = "[" + SD_ID + "".join(f' {key}="{_sd_value(value)}"' for key, value in params.items()) + "]"
    header = (
        f"<{pri}>1 {timestamp} {_printable(_hostname(), 255)} {APP_NAME} - {_printable(document['action'], 32)} {sd}"
    )
    body = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f"{header} {BOM}{body}".encode()


def frame(message: bytes) -> bytes:
    """Octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


def send(sink: AuditSink, documents: list[dict[str, Any]]) -> None:
    """Send one batch on its own connection and wait for the receiver's orderly close; raise `DeliveryError`."""
    payload = b"".join(frame(format_message(document)) for document in documents)
    where = f"{sink.host}:{sink.port}"
    timeout = float(settings.AUDIT_SINK_TIMEOUT)
    deadline = time.monotonic() + timeout
    context = tls_context(sink.ca_certificate) if sink.transport == AuditSink.Transport.TLS else None
    last_error = "no address"
    for address in addresses(sink.host, int(sink.port or 0)):
        try:
            raw = socket.create_connection(
                (address, int(sink.port or 0)), timeout=max(0.1, deadline - time.monotonic())
            )
        except OSError as exc:
            last_error = type(exc).__name__
            continue
        try:
            _exchange(raw, context, sink.host, payload, deadline)
            return
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"syslog {where}: TLS failed ({getattr(exc, 'reason', None) or type(exc).__name__})"
            ) from None
        except TimeoutError:
            raise DeliveryError(
                f"syslog {where}: timed out (the receiver must close the connection after a batch)"
            ) from None
        except OSError as exc:
            raise DeliveryError(f"syslog {where}: connection failed ({type(exc).__name__})") from None
    raise DeliveryError(f"syslog {where}: could not connect ({last_error})")


def _exchange(raw: socket.socket, context: ssl.SSLContext | None, host: str, payload: bytes, deadline: float) -> None:
    """Handshake, send, half-close, then read until the receiver's close (anything it sends is ignored)."""
    sock = raw
    try:
        raw.settimeout(max(0.1, deadline - time.monotonic()))
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(payload)
        # Half-close: the receiver reads to the end, then closes its side; its close is our acknowledgement.
        sock.shutdown(socket.SHUT_WR)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            if not sock.recv(4096):
                return
    finally:
        sock.close()
