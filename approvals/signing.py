"""The webhook's signature: HMAC-SHA256 over ``<timestamp>.<body>``, with a replay window.

Headers sent: ``X-AuthSec-Timestamp`` (Unix seconds) and ``X-AuthSec-Signature: v1=<hex>``. A receiver recomputes
the HMAC with the shared secret, compares in constant time, and refuses a timestamp more than
`REPLAY_WINDOW` seconds away from its clock (and, to be strict, an event ``id`` it has seen before).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-AuthSec-Timestamp"
SIGNATURE_HEADER = "X-AuthSec-Signature"
REPLAY_WINDOW = 300  # seconds


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None, window: int = REPLAY_WINDOW
) -> bool:
    """True when `headers` carry a valid signature of `body` made within `window` seconds of `now`."""
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ts, signature = lowered.get(TIMESTAMP_HEADER.lower(), ""), lowered.get(SIGNATURE_HEADER.lower(), "")
    if not secret or not raw_ts.isdigit() or not signature:
        return False
    timestamp = int(raw_ts)
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
