"""Tool pinning: the writes that pin a tool's definition, notice drift, and approve or reject it.

A pin is the definition an admin allowed, hashed (`rbac.pin_definitions`). Definitions are re-hashed where
they come from — the MCP tool registry at import (code reload), the SDK's declarations, a runtime manifest —
and handed to `observe_tool`, which runs only when a hash is new to the pin, never per call:
- first sight of a tool whose policy is enabled (hosted, SDK) or mapped (manifest): pinned as is (enabling the
  tool was the admin's approval); its poisoning warnings are kept and shown;
- a definition that is neither the pinned one nor the last seen: drift, audited with both hashes. In `hold`
  mode the tool is held (not served, old or new) until an admin approves the new pin or rejects it; in `warn`
  mode it is served and flagged; `off` checks nothing;
- the pinned definition seen again: the drift is withdrawn.
Each function is an `audit.writes.service` with one event; `pins_changed` is sent in the transaction so the MCP
endpoint can drop its cached tool sets and tell clients (``notifications/tools/list_changed``) after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.models import AuditEvent
from audit.recorder import Actor, record
from audit.writes import service
from rbac.models import ToolPin, ToolPinSettings, ToolPolicy
from rbac.pin_definitions import definition_hash, scan

Mode = ToolPinSettings.Mode
State = ToolPin.State
SYSTEM = Actor(AuditEvent.ActorType.SYSTEM, "", "tool pinning")

# Sent inside the writing transaction with `applications`: the slugs whose served tools may have changed
# (None: every application of the current tenant). Receivers act on commit.
pins_changed = Signal()


@dataclass(frozen=True)
class Seen:
    """A definition as registered or published: its canonical form, hash and poisoning warnings."""

    definition: dict[str, Any]
    hash: str
    warnings: list[dict[str, str]]


def seen(value: Mapping[str, Any], other_tools: Iterable[str] = (), *, digest: str = "") -> Seen:
    """Hash (unless `digest` was computed at registration) and scan a definition of `pin_definitions.definition`."""
    return Seen(dict(value), digest or definition_hash(value), scan(value, other_tools))


def _where(pin: ToolPin) -> dict[str, Any]:
    """The top-level keys of every pin event (the review pages filter on `application` and `tool`)."""
    if pin.policy_id is not None:
        return {"application": pin.policy.application.slug, "tool": pin.tool_name, "source": pin.source}
    return {"resource_server": str(pin.resource_server_id), "tool": pin.tool_name, "source": pin.source}


def _changed(pin: ToolPin) -> None:
    pins_changed.send(sender=ToolPin, applications=None if pin.policy_id is None else {pin.policy.application.slug})


def _locked_pin(*, policy: ToolPolicy | None, resource_server_id: Any, tool_name: str, source: str) -> ToolPin:
    """The pin of a tool policy or of a resource server's tool, locked for this transaction (created if new)."""
    lookup: dict[str, Any] = (
        {"policy": policy} if policy is not None else {"resource_server_id": resource_server_id, "tool_name": tool_name}
    )
    pins = ToolPin.objects.select_for_update(of=("self",)).select_related("policy__application")
    pin = pins.filter(**lookup).first()
    if pin is None:
        try:
            with transaction.atomic():  # a savepoint: another process may create it first
                ToolPin.objects.create(**{**lookup, "tool_name": tool_name, "source": source})
        except IntegrityError:
            pass
        pin = pins.get(**lookup)
    return pin


def _see(pin: ToolPin, observed: Seen, now: Any) -> None:
    pin.seen_hash, pin.seen_definition, pin.seen_at = observed.hash, observed.definition, now
    pin.warnings = observed.warnings


@service
def observe_tool(
    *,
    actor: Any,
    observed: Seen,
    source: str,
    policy: ToolPolicy | None = None,
    resource_server_id: Any = None,
    tool_name: str = "",
    pin_first_sight: bool = True,
    mode: str | None = None,
) -> ToolPin | None:
    """Record a definition of a tool as registered, declared or published (see the module docstring).

    `policy` for an application's tool, else `resource_server_id` and `tool_name`. `pin_first_sight`: whether a
    tool without a pin is pinned now (a manifest tool is pinned only once an admin maps it). Returns the pin, or
    None in `off` mode (nothing is recorded)."""
    mode = mode or ToolPinSettings.current_mode()
    if mode == Mode.OFF:
        return None
    name = policy.tool_name if policy is not None else tool_name
    pin = _locked_pin(policy=policy, resource_server_id=resource_server_id, tool_name=name, source=source)
    digest, now = observed.hash, timezone.now()
    if not pin.pinned_hash:
        if digest == pin.seen_hash and not pin_first_sight:
            return pin
        _see(pin, observed, now)
        if pin_first_sight:
            _pin_seen(pin, actor=actor, via="first sight")
        else:
            pin.save()
        return pin
    if digest == pin.seen_hash:
        return pin
    withdrawn = pin.seen_hash
    _see(pin, observed, now)
    pin.save()
    if digest == pin.pinned_hash:
        record(
            actor,
            "rbac.tool_drift_withdrawn",
            target=pin,
            data={**_where(pin), "pinned_hash": digest, "withdrawn_hash": withdrawn},
        )
    else:
        record(
            actor,
            "rbac.tool_drift_detected",
            target=pin,
            outcome=AuditEvent.Outcome.DENY if pin.holds(mode) else AuditEvent.Outcome.SUCCESS,
            data={
                **_where(pin),
                "pinned_hash": pin.pinned_hash,
                "new_hash": digest,
                "previously_seen_hash": withdrawn,
                "mode": mode,
                "held": pin.holds(mode),
                "rejected_before": digest == pin.rejected_hash,
                "warnings": observed.warnings,
            },
        )
    _changed(pin)
    return pin


def _reviewable(pin: ToolPin, expected_hash: str, verb: str) -> ToolPin:
    locked = ToolPin.objects.select_for_update(of=("self",)).select_related("policy__application").get(pk=pin.pk)
    if not locked.seen_hash:
        raise ValidationError(f"Nothing to {verb}: no definition of this tool has been seen yet.")
    if locked.seen_hash != expected_hash:
        raise ValidationError(
            f"The definition of {locked.tool_name} changed again since this page was shown; review it again."
        )
    return locked


@service
def approve_pin(pin: ToolPin, *, actor: Any, expected_hash: str) -> ToolPin:
    """Pin the last seen definition (the one shown to the admin: `expected_hash`); the tool is served again."""
    pin = _reviewable(pin, expected_hash, "approve")
    if pin.state == State.PINNED:
        raise ValidationError(f"{pin.tool_name} is already pinned to this definition.")
    before = pin.pinned_hash
    pin.pinned_hash, pin.pinned_definition, pin.pinned_at = pin.seen_hash, pin.seen_definition, timezone.now()
    pin.rejected_hash = ""
    pin.save()
    record(
        actor,
        "rbac.tool_pin_approved",
        target=pin,
        data={**_where(pin), "before_hash": before, "after_hash": pin.pinned_hash, "warnings": pin.warnings},
    )
    _changed(pin)
    return pin


@service
def reject_pin(pin: ToolPin, *, actor: Any, expected_hash: str) -> ToolPin:
    """Refuse the last seen definition: the pin stays, and the tool is served only where its definition is the
    pinned one (a process or SDK still serving the rejected definition keeps it held)."""
    pin = _reviewable(pin, expected_hash, "reject")
    if pin.state != State.DRIFTED:
        raise ValidationError(f"{pin.tool_name} has no change waiting for review.")
    pin.rejected_hash = pin.seen_hash
    pin.save()
    record(
        actor,
        "rbac.tool_pin_rejected",
        target=pin,
        data={**_where(pin), "pinned_hash": pin.pinned_hash, "rejected_hash": pin.rejected_hash},
    )
    _changed(pin)
    return pin


def _pin_seen(pin: ToolPin, *, actor: Any, via: str) -> None:
    """Pin the last seen definition of a tool that had no pin (a step of `observe_tool` and `pin_mapped`)."""
    pin.pinned_hash, pin.pinned_definition, pin.pinned_at = pin.seen_hash, pin.seen_definition, timezone.now()
    pin.rejected_hash = ""
    pin.save()
    record(
        actor,
        "rbac.tool_pinned",
        target=pin,
        data={**_where(pin), "hash": pin.pinned_hash, "via": via, "warnings": pin.warnings},
    )
    # No `pins_changed`: a first pin changes what is served nowhere (nothing was held for lack of a pin).


@service
def pin_mapped(*, actor: Any, resource_server_id: Any, tool_names: Iterable[str]) -> list[str]:
    """Runtime-API tools an admin has mapped (made public or given scopes): the last published definition of each
    that has no pin yet is pinned now (the mapping is the approval). Pinned tools keep their pins (drift is
    reviewed on the pin's page). Returns the tools pinned."""
    if ToolPinSettings.current_mode() == Mode.OFF:
        return []
    waiting = (
        ToolPin.objects.select_for_update()
        .filter(resource_server_id=resource_server_id, tool_name__in=list(tool_names), pinned_hash="")
        .exclude(seen_hash="")
    )
    pinned = []
    for pin in waiting:
        _pin_seen(pin, actor=actor, via="mapping")
        pinned.append(pin.tool_name)
    return sorted(pinned)


def forget_resource_server(resource_server_id: Any) -> int:
    """Delete the pins of a deleted resource server (in the caller's transaction; its deletion is audited)."""
    deleted, _ = ToolPin.objects.filter(resource_server_id=resource_server_id).delete()
    return deleted


@service
def set_pin_mode(*, actor: Any, mode: str) -> bool:
    """Set the tenant's pinning mode (hold, warn, off); True when it changed. Every application's served tools may
    change with it."""
    if mode not in Mode.values:
        raise ValidationError(f"Unknown pinning mode {mode!r}: use one of {', '.join(Mode.values)}.")
    settings, _ = ToolPinSettings.objects.select_for_update().get_or_create(pk=1)
    if settings.mode == mode:
        return False
    before, settings.mode = settings.mode, mode
    settings.save()
    record(actor, "rbac.pin_mode_changed", target=settings, data={"before": before, "after": mode})
    pins_changed.send(sender=ToolPin, applications=None)
    return True


# --- Export and import (staging → production) -------------------------------------------------------------------


def export_pins() -> list[dict[str, Any]]:
    """Every pinned definition of the tenant, in the shape `import_pins` reads."""
    pins = ToolPin.objects.exclude(pinned_hash="").select_related("policy__application").order_by("pk")
    exported = []
    for pin in pins:
        owner = (
            {"application": pin.policy.application.slug}
            if pin.policy_id is not None
            else {"resource_server": str(pin.resource_server_id)}
        )
        exported.append(
            {
                **owner,
                "tool": pin.tool_name,
                "source": pin.source,
                "hash": pin.pinned_hash,
                "definition": pin.pinned_definition,
                "pinned_at": pin.pinned_at.isoformat() if pin.pinned_at else None,
                "state": pin.state,
            }
        )
    return exported


@dataclass(frozen=True)
class PinEntry:
    """One validated entry of an import: which tool, and the definition to pin (its hash checked)."""

    tool: str
    hash: str
    definition: dict[str, Any]
    application: str = ""
    resource_server: str = ""
    source: str = ""


def parse_entry(raw: Any, index: int) -> PinEntry:
    """Validate one exported entry; `ValidationError` naming the entry and the problem."""
    where = f"pins[{index}]"
    if not isinstance(raw, dict):
        raise ValidationError(f"{where} must be an object.")
    tool, digest, value = raw.get("tool"), raw.get("hash"), raw.get("definition")
    application, server = raw.get("application") or "", raw.get("resource_server") or ""
    if not isinstance(tool, str) or not tool:
        raise ValidationError(f"{where}: 'tool' is required.")
    if bool(application) == bool(server) or not isinstance(application, str) or not isinstance(server, str):
        raise ValidationError(f"{where}: give either 'application' or 'resource_server'.")
    if not isinstance(value, dict) or value.get("name") != tool:
        raise ValidationError(f"{where}: 'definition' must be the tool's definition object (with its name).")
    if not isinstance(digest, str) or definition_hash(value) != digest:
        raise ValidationError(f"{where}: 'hash' is not the SHA-256 of the definition given.")
    source = raw.get("source") if raw.get("source") in ToolPin.Source.values else ""
    return PinEntry(tool, digest, value, application, server, source)


@service
def import_pins(*, actor: Any, entries: list[PinEntry]) -> dict[str, list[dict[str, str]]]:
    """Pin the given definitions (an import is an approval by `actor`). Application pins are matched by slug and
    tool name (the policy must exist here), runtime-API pins by resource server id and tool name (the pin must
    exist here). Returns ``{"imported": […], "skipped": […]}``; one audit event lists both."""
    imported: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    apps: set[str] = set()
    for entry in entries:
        key = {"tool": entry.tool, **({"application": entry.application} if entry.application else {})}
        if entry.resource_server:
            key["resource_server"] = entry.resource_server
        if entry.application:
            policy = ToolPolicy.objects.filter(application__slug=entry.application, tool_name=entry.tool).first()
            if policy is None:
                skipped.append({**key, "reason": "no such tool policy"})
                continue
            source = entry.source or ToolPin.Source.HOSTED
            pin = _locked_pin(policy=policy, resource_server_id=None, tool_name=entry.tool, source=source)
            apps.add(entry.application)
        else:
            found = ToolPin.objects.filter(resource_server_id=_uuid(entry.resource_server), tool_name=entry.tool)
            if not found.exists():
                skipped.append({**key, "reason": "no such resource server tool"})
                continue
            pin = found.select_for_update().get()
        before = pin.pinned_hash
        if before == entry.hash:
            skipped.append({**key, "reason": "already pinned"})
            continue
        pin.pinned_hash, pin.pinned_definition, pin.pinned_at = entry.hash, entry.definition, timezone.now()
        pin.rejected_hash = "" if pin.rejected_hash == entry.hash else pin.rejected_hash
        pin.save()
        imported.append({**key, "before_hash": before, "after_hash": entry.hash})
    if imported:
        record(actor, "rbac.tool_pins_imported", target=None, data={"imported": imported, "skipped": skipped})
        pins_changed.send(sender=ToolPin, applications=None if any("resource_server" in i for i in imported) else apps)
    return {"imported": imported, "skipped": skipped}


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationError(f"'{value}' is not a resource server id.") from None
