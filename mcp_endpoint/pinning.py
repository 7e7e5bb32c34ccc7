"""Tool pinning at the hosted MCP endpoint (`rbac.pins` keeps the pins; docs/pinning.md).

When an application's configuration is loaded (`mcp_endpoint.bearer.load_config`: once per configuration
version and tool-registry generation per process, never per request), the definitions this process registered
are compared with the application's pins by their hashes, computed at registration. A definition new to a pin is
recorded (`rbac.pins.observe_tool`: first sight pins it, a change is drift), and the held and flagged tools
become part of the cached `AppConfig`, so tools/list and tools/call pay one set lookup for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp_endpoint.registry import Registry, registry
from rbac import pins
from rbac.models import ToolPin, ToolPinSettings, ToolPolicy

HELD_REASON = "held: the tool's definition changed and waits for review"


def held_message(name: str) -> str:
    """What a caller allowed to use a held tool is told (a caller without access is told the tool is unknown)."""
    return (
        f"The tool {name} changed and waits for review: an administrator of this organisation must approve its "
        "new definition before it is served again."
    )


@dataclass(frozen=True)
class PinState:
    """The pinning facts of one application's tools, as this process serves them."""

    mode: str = ToolPinSettings.Mode.HOLD
    held: frozenset[str] = frozenset()
    flagged: frozenset[str] = frozenset()  # served although changed (`warn` mode)
    seen: dict[str, str] = field(default_factory=dict)  # tool → hash of the last definition seen
    generation: int = 0  # the tool registry's generation the state was computed for


def _pin(row: ToolPolicy) -> ToolPin | None:
    try:
        return row.pin
    except ToolPin.DoesNotExist:
        return None


def load(rows: list[ToolPolicy], source: Registry | None = None) -> PinState:
    """Record what this process's registered definitions tell the pins of `rows` (one application's policies,
    with their pins selected), then the held and flagged tools. Writes only for a hash the pin has not met."""
    source = source or registry
    generation = source.generation
    mode = ToolPinSettings.current_mode()
    if mode == ToolPinSettings.Mode.OFF:
        return PinState(mode=mode, generation=generation)
    names = [row.tool_name for row in rows]
    for row in rows:
        tool = source.get(row.tool_name)
        pin = _pin(row)
        if tool is None:
            continue  # declared by the SDK, or not served here: its pin is kept by whoever registers it
        if pin is not None and pin.pinned_hash and tool.definition_hash in pin_hashes(pin):
            continue
        observed = pins.seen(tool.definition, names, digest=tool.definition_hash)
        pinned = pins.observe_tool.nested(
            actor=pins.SYSTEM, observed=observed, source=ToolPin.Source.HOSTED, policy=row, mode=mode
        )
        if pinned is not None:
            row.pin = pinned
    held: set[str] = set()
    flagged: set[str] = set()
    seen: dict[str, str] = {}
    for row in rows:
        pin = _pin(row)
        if pin is None:
            continue
        tool = source.get(row.tool_name)
        own = tool.definition_hash if tool is not None else ""
        if pin.holds(mode, own):
            held.add(row.tool_name)
        elif pin.flagged(mode, own):
            flagged.add(row.tool_name)
        seen[row.tool_name] = pin.seen_hash
    return PinState(mode, frozenset(held), frozenset(flagged), seen, generation)


def pin_hashes(pin: ToolPin) -> tuple[str, ...]:
    """The hashes a pin already knows: a definition with one of these is not recorded again, so two processes
    running different code (a rolling deploy) never take turns overwriting the last seen definition."""
    return tuple(digest for digest in (pin.pinned_hash, pin.seen_hash, pin.rejected_hash) if digest)
