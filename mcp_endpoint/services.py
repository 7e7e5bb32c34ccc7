"""Writes of the MCP endpoint: seeding an application's tool policies from the code's declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from mcp_endpoint.registry import Registry, registry
from rbac import services as rbac_services
from rbac.models import Application, ToolPolicy


@transaction.atomic
def seed_tool_policies(
    *, actor: Any, application: Application, tools: Iterable[str] | None = None, source: Registry | None = None
) -> list[str]:
    """Create the missing `ToolPolicy` rows of `application` from registered tools' declared requirements.

    Existing rows are never changed (an admin's edit wins over the code). Returns the tools seeded."""
    source = source or registry
    names = list(tools) if tools is not None else source.names()
    existing = set(ToolPolicy.objects.filter(application=application).values_list("tool_name", flat=True))
    created = []
    for name in names:
        tool = source.get(name)
        if tool is None:
            raise ValueError(f"No registered tool named {name!r}")
        if name in existing:
            continue
        rbac_services.upsert_tool_policy(
            actor=actor, application=application, tool_name=name, description=tool.description, **tool.requirement
        )
        created.append(name)
    return created
