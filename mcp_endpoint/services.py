"""Writes of the MCP endpoint: seeding an application's tool policies from the code's declarations; ending a
user's login-tool sessions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from mcp_endpoint.models import AuthSession
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


def end_user_sessions(*, user: Any) -> int:
    """Log out every live login-tool session of `user` (caller's transaction); returns how many.

    Sessions are read from the database on every request, so the change counts from the commit on."""
    live = (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED)
    return AuthSession.objects.filter(user=user, status__in=live).update(status=AuthSession.Status.LOGGED_OUT)


def _user_access_ended(sender: Any, user: Any, reason: str, **kwargs: Any) -> dict[str, int]:
    return {"mcp_session_count": end_user_sessions(user=user)}
