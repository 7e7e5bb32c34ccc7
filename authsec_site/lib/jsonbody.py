"""The one JSON body parser: every JSON request body is held to the same size, depth and key-count limits.

`parse_json` is used by the OAuth registration endpoint, the SDK-manager API and the management API's DRF
parser; the MCP endpoint, whose SDK parses the body itself, runs `check_json` first. Limits come from the
settings ``JSON_MAX_BYTES``, ``JSON_MAX_DEPTH`` and ``JSON_MAX_KEYS``. Python's recursive decoder never sees
a body over the depth limit, so no ``RecursionError`` can escape; each caller maps `JSONBodyError` to its
protocol's own error (JSON-RPC, OAuth, problem JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from itertools import accumulate
from typing import Any

from django.conf import settings

# A JSON string token (unrolled loop: linear, no backtracking); removed before brackets and colons are counted.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# An escaped UTF-16 surrogate: valid only as a pair, which the final encode check confirms.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JSONBodyError(ValueError):
    """A body that is not acceptable JSON. `reason`: size, depth, keys, encoding or syntax."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def is_limit(self) -> bool:
        """Well-formed perhaps, but over a limit (size, depth or keys)."""
        return self.reason in ("size", "depth", "keys")


def _limits(max_bytes: int | None, max_depth: int | None, max_keys: int | None) -> tuple[int, int, int]:
    return (
        settings.JSON_MAX_BYTES if max_bytes is None else max_bytes,
        settings.JSON_MAX_DEPTH if max_depth is None else max_depth,
        settings.JSON_MAX_KEYS if max_keys is None else max_keys,
    )


def check_json(
    body: bytes, *, max_bytes: int | None = None, max_depth: int | None = None, max_keys: int | None = None
) -> None:
    """Raise `JSONBodyError` when `body` is over a limit; O(n) and, for a normal request, three C-level counts.

    Nesting depth is the running count of brackets outside strings; keys are the colons outside strings."""
    limit_bytes, limit_depth, limit_keys = _limits(max_bytes, max_depth, max_keys)
    if len(body) > limit_bytes:
        raise JSONBodyError("size", f"The JSON body is larger than {limit_bytes} bytes.")
    if body.count(b"{") + body.count(b"[") <= limit_depth and body.count(b":") <= limit_keys:
        return  # cannot be over either limit: strings only add to these counts
    structure = _STRING.sub(b"", body)
    if structure.count(b":") > limit_keys:
        raise JSONBodyError("keys", f"The JSON body has more than {limit_keys} keys.")
    brackets = structure.translate(None, _NOT_STRUCTURE)
    if brackets and max(accumulate(map(_STEP.__getitem__, brackets))) > limit_depth:
        raise JSONBodyError("depth", f"The JSON body is nested deeper than {limit_depth} levels.")


def parse_json(
    body: bytes, *, max_bytes: int | None = None, max_depth: int | None = None, max_keys: int | None = None
) -> Any:
    """`body` (UTF-8 JSON, RFC 8259) as Python values, within the limits; raises `JSONBodyError` only."""
    check_json(body, max_bytes=max_bytes, max_depth=max_depth, max_keys=max_keys)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONBodyError("encoding", "The JSON body is not valid UTF-8.") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise JSONBodyError("syntax", f"The body is not valid JSON ({exc.args[0].split(':')[0]}).") from None
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JSONBodyError("encoding", "The JSON body has an unpaired UTF-16 surrogate escape.") from None
    return value


# --- ASGI bodies: read once, handed on unchanged --------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]


async def read_asgi_body(receive: Receive) -> tuple[list[dict[str, Any]], bytes]:
    """An ASGI request's body messages and bytes, read until its end or until it passes ``JSON_MAX_BYTES`` (then
    the caller refuses it as too large); `replay` hands the messages on to the app that reads the body next."""
    messages: list[dict[str, Any]] = []
    body = b""
    limit = settings.JSON_MAX_BYTES
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if len(body) > limit or not message.get("more_body", False):
            break
    return messages, body


def replay(messages: list[dict[str, Any]], receive: Receive) -> Receive:
    """A `receive` that returns `messages` first, then reads on from `receive`."""
    pending = list(messages)

    async def replayed() -> dict[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replayed
