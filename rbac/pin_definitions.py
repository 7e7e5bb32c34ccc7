"""A tool's definition as it is pinned: its canonical form, its SHA-256, and the poisoning scan of its text.

Model-free and pure, so it runs where a definition is registered or published (the MCP tool registry at
import time, the SDK's declarations, a runtime manifest) and never per call. The patterns of the scan live in
one data file, `pin_patterns.toml`, each with a positive and a negative case in tests/rbac/test_pin_patterns.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATTERNS_FILE = Path(__file__).with_name("pin_patterns.toml")
# The fields a pin covers, in the MCP spelling (`tools/list`).
FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
MAX_EXCERPT = 80
MAX_WARNINGS = 50


def definition(
    name: str,
    *,
    title: str | None = None,
    description: str | None = None,
    input_schema: Mapping[str, Any] | None = None,
    output_schema: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The pinned form of a tool: every field of `FIELDS`, absent ones (and empty strings or objects) as None,
    so that the same tool described by the registry, the SDK or a manifest gives the same hash."""
    return {
        "name": name,
        "title": title or None,
        "description": description or None,
        "inputSchema": dict(input_schema) if input_schema else None,
        "outputSchema": dict(output_schema) if output_schema else None,
        "annotations": dict(annotations) if annotations else None,
    }


def canonical_json(value: Mapping[str, Any]) -> str:
    """Keys sorted, no whitespace, Unicode kept as is (an invisible character changes the hash)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def definition_hash(value: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a definition made by `definition`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


# --- The poisoning scan ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    id: str
    kind: str
    targets: frozenset[str]
    regex: str
    message: str

    @functools.cached_property
    def compiled(self) -> re.Pattern[str] | None:
        """The regex, or None for a template (``{tools}``) that is filled in per scan."""
        return None if "{tools}" in self.regex else re.compile(self.regex)

    def search(self, text: str, others: tuple[str, ...]) -> re.Match[str] | None:
        if self.compiled is not None:
            return self.compiled.search(text)
        if not others:
            return None
        names = "|".join(re.escape(name) for name in sorted(others, key=len, reverse=True))
        return re.search(self.regex.replace("{tools}", names), text)


@functools.cache
def patterns() -> tuple[Pattern, ...]:
    """The patterns of `PATTERNS_FILE` (read once per process)."""
    with PATTERNS_FILE.open("rb") as handle:
        data = tomllib.load(handle)
    return tuple(
        Pattern(item["id"], item["kind"], frozenset(item["targets"]), item["regex"], item["message"])
        for item in data["pattern"]
    )


def _texts(value: Any, where: str) -> Iterator[tuple[str, str, str]]:
    """(target, where, text) of every string of a schema that a model reads, at any depth."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{where}[{index}]")
        return
    if not isinstance(value, dict):
        return
    in_properties = where.endswith(".properties")
    for key, item in value.items():
        path = f"{where}.{key}"
        if in_properties:  # keys are property names here, not schema keywords
            if isinstance(item, dict) and "default" in item:
                yield "default-field", path, str(key)
            yield from _texts(item, path)
        elif key in ("description", "title") and isinstance(item, str):
            yield "text", path, item
        elif key in ("default", "const", "examples", "enum"):
            yield from (("default", path, text) for text in _strings(item))
        else:
            yield from _texts(item, path)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _excerpt(text: str, match: re.Match[str]) -> str:
    start = max(match.start() - 20, 0)
    piece = text[start : match.end() + 20]
    # Invisible and bidirectional characters are shown as code points, so the warning can be read.
    shown = "".join(f"<U+{ord(ch):04X}>" if is_hidden(ch) else ch for ch in piece)
    return shown[:MAX_EXCERPT]


def is_hidden(ch: str) -> bool:
    """Invisible or bidirectional-control characters (shown as code points wherever a person reviews text)."""
    code = ord(ch)
    return (
        code in (0x00AD, 0x180E, 0x061C, 0xFEFF)
        or 0x200B <= code <= 0x200F
        or 0x202A <= code <= 0x202E
        or 0x2060 <= code <= 0x2069
        or 0xE0000 <= code <= 0xE007F
    )


def scan(value: Mapping[str, Any], other_tools: Iterable[str] = ()) -> list[dict[str, str]]:
    """Warnings for a definition made by `definition`: ``{pattern, kind, message, where, excerpt}`` for each
    pattern that matches a place, in the data file's order (at most `MAX_WARNINGS`). `other_tools` are the
    names of the application's other tools (pattern ``names-other-tool``)."""
    others = tuple(sorted({name for name in other_tools if name and name != value.get("name")}))
    places: list[tuple[str, str, str]] = []
    for key in ("title", "description"):
        if isinstance(value.get(key), str):
            places.append(("text", key, value[key]))
    for key in ("inputSchema", "outputSchema", "annotations"):
        if isinstance(value.get(key), (dict, list)):
            places.extend(_texts(value[key], key))
    warnings: list[dict[str, str]] = []
    for pattern in patterns():
        for target, where, text in places:
            if target not in pattern.targets:
                continue
            match = pattern.search(text, others)
            if match is not None:
                warnings.append(
                    {
                        "pattern": pattern.id,
                        "kind": pattern.kind,
                        "message": pattern.message,
                        "where": where,
                        "excerpt": _excerpt(text, match),
                    }
                )
                if len(warnings) >= MAX_WARNINGS:
                    return warnings
    return warnings
