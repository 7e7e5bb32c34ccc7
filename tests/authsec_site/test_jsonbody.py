"""`authsec_site.lib.jsonbody`: the one JSON body parser and its limits (depth, size, keys, UTF-8)."""

from __future__ import annotations

import json

import pytest

from authsec_site.lib.jsonbody import JSONBodyError, check_json, parse_json

LIMITS = {"max_bytes": 10_000, "max_depth": 8, "max_keys": 20}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "size"),
        (b"[" * 9 + b"]" * 9, "depth"),
        (b'{"a":' * 9 + b"1" + b"}" * 9, "depth"),
        (b"[" * 5000 + b"]" * 5000, "depth"),  # under the size limit, far over the depth limit
        (json.dumps({f"k{n}": n for n in range(21)}).encode(), "keys"),
        (json.dumps([{"a": 1}] * 21).encode(), "keys"),  # keys are counted over all objects
        (b'{"a": "\xff"}', "encoding"),
        (b'{"a": "\\ud800"}', "encoding"),
        (b"\xef\xbb\xbf{}", "syntax"),  # a BOM is not JSON (RFC 8259 §8.1)
        (b'{"a": ', "syntax"),
        (b"1" * 5000, "syntax"),  # Python's int-digit limit is a parse error too, not a 500
    ],
)
def test_refuses_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(JSONBodyError) as caught:
        parse_json(body, **LIMITS)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "value",
    [
        [[[[[[[["eight deep"]]]]]]]],
        {"brackets in strings do not count": "[[[[[[[[[[{{{{{{{{{{", "nor colons": "::::::::::::::::::::::"},
        {"escaped quote \\" + '"': '[[[[[[[[[["'},
        {"emoji": "\U0001f600", "pair": "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16")},
    ],
)
def test_accepts_json_within_the_limits(value: object) -> None:
    body = json.dumps(value).encode()
    assert parse_json(body, **LIMITS) == value
    check_json(body, **LIMITS)


def test_limits_come_from_the_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.JSON_MAX_DEPTH = 4
    with pytest.raises(JSONBodyError, match="deeper than 4"):
        parse_json(b"[[[[[1]]]]]")
    settings.JSON_MAX_DEPTH = 5
    assert parse_json(b"[[[[[1]]]]]") == [[[[[1]]]]]
