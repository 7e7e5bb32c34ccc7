"""manage.py verify_pins: drift of this code against an exported pins file (a tool author's CI), and the drift
recorded in the database; a non-zero exit on drift."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from mcp_endpoint import pinning
from mcp_endpoint.registry import Registry, protected_by_AuthSec, registry
from rbac import pins
from rbac import services as rbac
from rbac.models import ToolPolicy
from rbac.pin_definitions import definition, definition_hash
from tenants.models import Tenant
from tests.factories import ApplicationFactory
from tests.support.live import ROOT, live_server_env


def export_of(tool: str, description: str | None = None) -> dict[str, object]:
    """An export entry for a tool of this code (its registered definition, or one with another description)."""
    value = dict(registry.get(tool).definition)
    if description is not None:
        value["description"] = description
    return {"application": "demo", "tool": tool, "hash": definition_hash(value), "definition": value}


def test_code_matching_the_exported_pins_passes(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_text(
        json.dumps({"format": "authsec-tool-pins/1", "pins": [export_of("hello"), export_of("calculator")]})
    )
    out = io.StringIO()
    call_command("verify_pins", pins=path, stdout=out)
    assert "No drift: 2 pinned tool(s) match." in out.getvalue()


def test_changed_code_fails_with_the_drift_listed(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    approved = export_of("hello", description="Greets the user.")  # what production approved
    path.write_text(json.dumps({"pins": [approved, export_of("calculator")]}))
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 tool\(s\) differ") as raised:
        call_command("verify_pins", pins=path, stdout=out)
    assert raised.value.returncode == 1
    assert f"DRIFT demo/hello: pinned {approved['hash'][:12]} → {registry.get('hello').definition_hash[:12]}" in (
        out.getvalue()
    )
    # As a CI step: the process exits non-zero.
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_pins", "--pins", str(path), "--json"],
        cwd=ROOT,
        env=live_server_env(DJANGO_SETTINGS_MODULE="authsec_site.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["tool"] == "hello"


@pytest.mark.django_db
def test_drift_recorded_in_the_database_is_listed_per_tenant(acme: Tenant, globex: Tenant) -> None:
    changed = Registry()

    @protected_by_AuthSec("probe_tool", description="Changed.", inputSchema={"type": "object"}, target=changed)
    async def probe_tool(arguments: dict) -> list:
        return []

    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="verify-pins")
        policy = rbac.upsert_tool_policy(actor="tests", application=app, tool_name="probe_tool")
        first = definition("probe_tool", description="Original.", input_schema={"type": "object"})
        pins.observe_tool(actor="tests", observed=pins.seen(first), source="hosted", policy=policy)
        pinning.load(list(ToolPolicy.objects.filter(application=app).select_related("pin")), changed)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_pins", tenant=["acme"], stdout=out)
    assert f"DRIFT acme/verify-pins/probe_tool: pinned {definition_hash(first)[:12]}" in out.getvalue()
    assert "(drifted)" in out.getvalue()
    quiet = io.StringIO()
    call_command("verify_pins", tenant=["globex"], stdout=quiet)
    assert "No drift" in quiet.getvalue()
