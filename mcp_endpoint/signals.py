"""Invalidate cached application settings and tool policies after any committed change to them,
whichever path made it (dashboard, REST API, services, shell)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)


def _schedule_bump(**kwargs: Any) -> None:
    schema = connection.schema_name

    def bump() -> None:
        from mcp_endpoint.auth import bump_config_version

        try:
            with schema_context(schema):
                bump_config_version()
        except Exception as exc:  # noqa: BLE001 - the change is committed; log that caches may lag
            logger.error("Could not invalidate the MCP configuration cache (%s)", type(exc).__name__)

    transaction.on_commit(bump)


def connect() -> None:
    from rbac.models import Application, ToolPolicy

    for model in (Application, ToolPolicy):
        post_save.connect(_schedule_bump, sender=model, dispatch_uid=f"mcp_bump_save_{model.__name__}")
        post_delete.connect(_schedule_bump, sender=model, dispatch_uid=f"mcp_bump_delete_{model.__name__}")
