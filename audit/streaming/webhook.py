"""HTTPS webhook: one POST per batch, a JSON body signed with HMAC-SHA256, accepted on any 2xx answer.

Headers: ``X-AuthSec-Timestamp`` (Unix seconds), ``X-AuthSec-Signature: sha256=<hex>`` over
``<timestamp>.<body>`` with the sink's secret, and ``X-AuthSec-Delivery`` (``<tenant>:<sink id>:<first>-<last>``,
the same when a batch is sent again, so a receiver can drop repeats). docs/audit.md shows how to verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from audit.models import AuditSink
from audit.streaming.net import DeliveryError, post

BATCH_FORMAT = "authsec-audit-batch/1"


def body(sink: AuditSink, tenant: str, documents: list[dict[str, Any]]) -> bytes:
    batch = {
        "format": BATCH_FORMAT,
        "tenant": tenant,
        "sink": sink.name,
        "first_seq": documents[0]["seq"],
        "last_seq": documents[-1]["seq"],
        "events": documents,
    }
    return json.dumps(batch, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256).hexdigest()


def send(sink: AuditSink, tenant: str, documents: list[dict[str, Any]], secret: str) -> None:
    """POST one batch; raise `DeliveryError` unless the receiver answered 2xx."""
    if not secret:
        raise DeliveryError("webhook: no signing secret is stored for this sink")
    payload = body(sink, tenant, documents)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-AuthSec-Timestamp": timestamp,
        "X-AuthSec-Signature": signature(secret, timestamp, payload),
        "X-AuthSec-Delivery": f"{tenant}:{sink.pk}:{documents[0]['seq']}-{documents[-1]['seq']}",
    }
    post(sink, payload, headers, what="webhook")
