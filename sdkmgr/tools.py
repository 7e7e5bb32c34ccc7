"""The SDK's tool declarations (`user_tools` of tools/list) and how they relate to `ToolPolicy` rows.

The SDK declares, on every tools/list, its protected tools with their `@protected_by_AuthSec` requirement.
A declaration only *seeds* the application's `ToolPolicy` row of that tool when the row does not exist yet
(like `mcp_endpoint.services.seed_tool_policies` for tools registered in our code); from then on the row
decides, so an admin's edit in the dashboard always wins over the code (to deny an SDK tool, disable its row:
a deleted row is seeded again by the next declaration). Declarations are not authenticated (the SDK sends
only its client id), hence:
- a tool name our own code registers (`mcp_endpoint.registry`) is seeded with our code's requirement,
  never with the declared one, and names starting with ``oauth_`` are never seeded (they are the login tools);
- a changed declaration never changes an existing row: the difference is written to the audit log
  (``sdkmgr.tools_declared``) for an admin to act on. The SDK re-checks its own requirement locally after
  every ``protect-tool`` answer, so the server can only narrow what the code allows.

Each declaration is also a registration of the tool's definition for tool pinning (`observe_definitions`):
a definition that differs from its pin is held (not listed, refused by protect-tool) until an admin reviews it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError

import audit
from rbac import pins
from rbac.engine import KINDS, Requirement
from rbac.models import TOOL_NAME_RE, Application, ToolPin, ToolPinSettings, ToolPolicy
from rbac.pin_definitions import definition, definition_hash
from sdkmgr.clients import Caller, SdkError

MAX_TOOLS = 200
MAX_NAMES = 50
MAX_SCHEMA_BYTES = 20_000
DEFAULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
SEEN_TTL = 24 * 3600


@dataclass(frozen=True)
class Declared:
    name: str
    description: str
    input_schema: dict[str, Any]
    rbac: dict[str, Any]

    def as_tool(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}

    def requirement(self) -> Requirement:
        return Requirement.of(require_all=self.rbac["require_all"], **{kind: self.rbac[kind] for kind in KINDS})

    def definition(self) -> dict[str, Any]:
        """The definition tool pinning hashes (the SDK declares no title, output schema or annotations)."""
        return definition(self.name, description=self.description, input_schema=self.input_schema)


def _names(tool: str, kind: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]  # the SDK's own check reads a lone string as one name
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        raise SdkError(400, "invalid_request", f"user_tools: {tool}.rbac.{kind} must be a list of at most {MAX_NAMES}.")
    if not all(isinstance(item, str) and 0 < len(item) <= 160 for item in value):
        raise SdkError(400, "invalid_request", f"user_tools: {tool}.rbac.{kind} must hold names of 1-160 characters.")
    return sorted(set(value))


def parse(user_tools: Any) -> list[Declared]:
    """Validate the SDK's `user_tools`; `SdkError` 400 naming the first problem."""
    if user_tools is None:
        return []
    if not isinstance(user_tools, list) or len(user_tools) > MAX_TOOLS:
        raise SdkError(400, "invalid_request", f"user_tools must be a list of at most {MAX_TOOLS} tools.")
    declared: dict[str, Declared] = {}
    for item in user_tools:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            raise SdkError(
                400, "invalid_request", "user_tools: every tool needs a name of 1-128 letters, digits, _ . -."
            )
        rbac = item.get("rbac") or {}
        if not isinstance(rbac, dict):
            raise SdkError(400, "invalid_request", f"user_tools: {name}.rbac must be an object.")
        lists = {kind: _names(name, kind, rbac.get(kind)) for kind in KINDS}
        description = item.get("description")
        schema = item.get("inputSchema")
        if not isinstance(schema, dict) or len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
            schema = dict(DEFAULT_SCHEMA)
        declared[name] = Declared(
            name=name,
            description=description[:1000] if isinstance(description, str) else "",
            input_schema=schema,
            rbac={**lists, "require_all": bool(rbac.get("require_all"))},
        )
    return list(declared.values())


def _fingerprint(declared: list[Declared], differs: list[str], ignored: list[str]) -> str:
    text = json.dumps([[[d.name, d.rbac] for d in declared], differs, ignored], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _row_fields(requirement: dict[str, Any]) -> dict[str, Any]:
    return {kind: list(requirement.get(kind) or []) for kind in KINDS} | {
        "require_all": bool(requirement.get("require_all"))
    }


def record_declarations(caller: Caller, declared: list[Declared]) -> list[str]:
    """Seed the missing `ToolPolicy` rows of the caller's application (see the module docstring).

    Reads the application's rows from the endpoint's cached configuration, so a steady SDK costs no database
    work; a difference between a declaration and its row is audited once per change. Returns the rows created."""
    from mcp_endpoint.registry import ensure_loaded, registry

    policies = caller.auth.app.policies
    missing = [tool for tool in declared if tool.name not in policies and not tool.name.startswith("oauth_")]
    ignored = [tool.name for tool in declared if tool.name.startswith("oauth_")]
    differs = [
        tool.name
        for tool in declared
        if tool.name in policies and replace(policies[tool.name], enabled=True) != tool.requirement()
    ]
    seeded: list[str] = []
    if missing:
        from rbac import services as rbac_services

        ensure_loaded()
        application = Application.objects.get(slug=caller.auth.app.slug)
        for tool in missing:
            code = registry.get(tool.name)
            fields = _row_fields(code.requirement if code is not None else tool.rbac)
            description = tool.description or (code.description if code is not None else "")
            try:
                rbac_services.upsert_tool_policy.nested(  # a savepoint: a concurrent insert loses only this row
                    actor=caller.actor,
                    application=application,
                    tool_name=tool.name,
                    description=f"{description[:900]} (declared by the AuthSec SDK)".strip(),
                    **fields,
                )
            except (IntegrityError, ValidationError):
                continue  # a concurrent tools/list created it first: that row stands
            seeded.append(tool.name)
    key = f"sdkmgr:declared:{caller.client_id}"
    fingerprint = _fingerprint(declared, differs, ignored)
    if seeded or ((differs or ignored) and cache.get(key) != fingerprint):
        audit.record(
            caller.actor,
            "sdkmgr.tools_declared",
            target=caller.target,
            data={
                "application": caller.auth.app.slug,
                "seeded": seeded,
                "differs_from_policy": differs,
                "ignored": ignored,
                "declared": len(declared),
            },
        )
        cache.set(key, fingerprint, timeout=SEEN_TTL)
    return seeded


def observe_definitions(caller: Caller, declared: list[Declared]) -> bool:
    """Hand the declared definitions that differ from the last seen ones to tool pinning (`rbac.pins`): the
    first of a tool is pinned, a changed one is drift (held in `hold` mode). Tools our own code registers are
    pinned from the code, not from a declaration. True when something was recorded (the caller then reloads
    the application's configuration, which carries the held tools). A steady SDK costs hashing only."""
    from mcp_endpoint.registry import registry

    state = caller.auth.app.pins
    if state.mode == ToolPinSettings.Mode.OFF:
        return False
    changed: dict[str, tuple[dict[str, Any], str]] = {}
    for tool in declared:
        if tool.name.startswith("oauth_") or tool.name in registry:
            continue
        value = tool.definition()
        digest = definition_hash(value)
        if state.seen.get(tool.name) != digest:
            changed[tool.name] = (value, digest)
    if not changed:
        return False
    names = [tool.name for tool in declared]
    rows = ToolPolicy.objects.filter(application__slug=caller.auth.app.slug, tool_name__in=list(changed))
    recorded = False
    for row in rows.select_related("application"):
        value, digest = changed[row.tool_name]
        observed = pins.seen(value, names, digest=digest)
        recorded |= (
            pins.observe_tool(
                actor=caller.actor, observed=observed, source=ToolPin.Source.SDK, policy=row, mode=state.mode
            )
            is not None
        )
    return recorded
