"""Invalidate cached application settings and tool policies after any committed change to them,
whichever path made it (dashboard, REST API, services, shell)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)


def _schedule_bump(**kwargs: Any) -> None:
    schema = connection.schema_name

    def bump() -> None:
        from mcp_endpoint.bearer import bump_config_version

        try:
            with schema_context(schema):
                bump_config_version()
        except Exception as exc:  # noqa: BLE001 - the change is committed; log that caches may lag
            logger.error("Could not invalidate the MCP configuration cache (%s)", type(exc).__name__)

    transaction.on_commit(bump)


def _access_token_deleted(instance: Any, **kwargs: Any) -> None:
    """Whatever deleted an access token (revocation, refresh rotation, reuse detection ending a family, code
    reuse, consent withdrawn, an admin): the MCP endpoint's offline check must refuse it from now on."""
    schema = connection.schema_name
    checksum = getattr(instance, "token_checksum", "")
    expires = int(instance.expires.timestamp()) if getattr(instance, "expires", None) else None
    if not checksum or (expires is not None and expires < time.time()):
        return  # nothing to refuse: an expired token is refused anyway

    def note() -> None:
        from mcp_endpoint.revocation import revoke_for_mcp

        with schema_context(schema):
            revoke_for_mcp([(checksum, expires)])

    transaction.on_commit(note)


def _pins_changed(sender: Any, applications: Any = None, **kwargs: Any) -> None:
    """A tool pin changed (`rbac.pins`): reload the settings (held tools are part of them), and tell the sessions
    of the applications concerned that their tool list changed."""
    from mcp_endpoint.notify import endpoint_changed

    _schedule_bump()
    schema = connection.schema_name
    if schema.startswith("tenant_"):  # `tenants.models.schema_name_for`: slugs have hyphens, schemas underscores
        endpoint_changed(schema.removeprefix("tenant_").replace("_", "-"), applications)


def connect() -> None:
    from oauth2_provider.models import get_access_token_model

    from rbac.models import Application, ToolPolicy
    from rbac.pins import pins_changed

    pins_changed.connect(_pins_changed, dispatch_uid="mcp_pins_changed")

    post_delete.connect(_access_token_deleted, sender=get_access_token_model(), dispatch_uid="mcp_access_token_deleted")

    for model in (Application, ToolPolicy):
        post_save.connect(_schedule_bump, sender=model, dispatch_uid=f"mcp_bump_save_{model.__name__}")
        post_delete.connect(_schedule_bump, sender=model, dispatch_uid=f"mcp_bump_delete_{model.__name__}")
