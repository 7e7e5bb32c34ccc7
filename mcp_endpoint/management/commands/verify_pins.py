"""manage.py verify_pins: list tools whose definition differs from its pin; exit 1 on any drift (for CI).

Two ways, both read-only:
- ``--pins FILE`` (an export of the management API, ``GET /t/<tenant>/api/tool-pins/export/``): compare the tools
  this code registers (AUTHSEC_TOOL_MODULES) with the pinned definitions of the file, no database needed. This is
  the check for a tool author's CI: "does my change alter a definition that production approved?"
- otherwise, for every active tenant (or those named with ``--tenant``): compare this code's tools with the
  database's pins, and list the drift already recorded (hosted, SDK and runtime-manifest tools alike).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from mcp_endpoint.registry import ensure_loaded, registry
from rbac.models import ToolPin
from rbac.pin_definitions import definition_hash
from tenants.models import Tenant


@dataclass(frozen=True)
class Drift:
    where: str  # tenant/application or tenant/resource server, or the file's application
    tool: str
    pinned: str
    current: str
    why: str

    def line(self) -> str:
        return f"DRIFT {self.where}/{self.tool}: pinned {self.pinned[:12]} → {self.current[:12] or '?'} ({self.why})"


class Command(BaseCommand):
    help = "List tools whose definition differs from its pin (exit 1 if any); --pins FILE checks this code only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pins", type=Path, help="A pins export (JSON) to check this code's tools against.")
        parser.add_argument("--tenant", action="append", default=[], help="Tenant slug (repeatable; default all).")
        parser.add_argument("--json", action="store_true", help="Print the drift as JSON lines.")

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_loaded()
        if options["pins"] is not None:
            drift, checked = self._against_file(options["pins"])
        else:
            drift, checked = self._against_database(options["tenant"])
        for item in drift:
            self.stdout.write(json.dumps(item.__dict__) if options["json"] else item.line())
        if drift:
            raise CommandError(f"{len(drift)} tool(s) differ from their pins ({checked} checked).", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"No drift: {checked} pinned tool(s) match."))

    def _against_file(self, path: Path) -> tuple[list[Drift], int]:
        try:
            data = json.loads(path.read_text())
            entries = data["pins"] if isinstance(data, dict) else data
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"Cannot read the pins file {path}: {exc}") from exc
        drift, checked = [], 0
        for entry in entries:
            tool = registry.get(entry.get("tool", "")) if isinstance(entry, dict) else None
            if tool is None or not entry.get("application"):
                continue  # not a tool of this code (SDK, manifest, or another code base)
            checked += 1
            if tool.definition_hash != entry.get("hash"):
                drift.append(
                    Drift(entry["application"], tool.name, str(entry.get("hash")), tool.definition_hash, "code")
                )
            elif entry.get("definition") and definition_hash(entry["definition"]) != entry["hash"]:
                raise CommandError(f"The pins file is damaged: the hash of {tool.name} does not match its definition.")
        return drift, checked

    def _against_database(self, slugs: list[str]) -> tuple[list[Drift], int]:
        tenants = Tenant.objects.serving()
        if slugs:
            tenants = tenants.filter(slug__in=slugs)
            missing = set(slugs) - set(tenants.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No active tenant {', '.join(sorted(missing))}.")
        drift, checked = [], 0
        for tenant in tenants:
            with schema_context(tenant.schema_name):
                for pin in ToolPin.objects.exclude(pinned_hash="").select_related("policy__application"):
                    checked += 1
                    where = f"{tenant.slug}/{pin.owner_label}"
                    tool = registry.get(pin.tool_name) if pin.source == ToolPin.Source.HOSTED else None
                    if tool is not None and tool.definition_hash != pin.pinned_hash:
                        drift.append(Drift(where, pin.tool_name, pin.pinned_hash, tool.definition_hash, "code"))
                    elif pin.state in (ToolPin.State.DRIFTED, ToolPin.State.REJECTED):
                        drift.append(Drift(where, pin.tool_name, pin.pinned_hash, pin.seen_hash, pin.state))
        return drift, checked
