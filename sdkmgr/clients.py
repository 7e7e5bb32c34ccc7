"""Who is calling: the SDK's client id → tenant and application, and the errors every SDK endpoint answers with.

The SDK sends its client id normalised as ``<uuid>-main-client`` (header ``X-Client-ID`` and body
``client_id``); `normalize` undoes that (also the ``_main-client`` and underscore-UUID spellings the SDK
accepts). The public directory (`SdkClient`) names the tenant; the tenant's `Application.sdk_client_id`
names the application. Unknown, malformed or inactive ids get the same clear JSON error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from audit.models import AuditEvent
from audit.recorder import Actor
from mcp_endpoint.bearer import RequestAuth, TenantRef, load_config

SUFFIX = "-main-client"


class SdkError(Exception):
    """An error answer: HTTP `status` with ``{"error", "message", **extra}`` (the shapes the SDK reads)."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


def normalize(raw: Any) -> str | None:
    """The canonical UUID string of an SDK client id in any spelling the SDK produces, else None."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().strip('"').strip("'").replace("_main-client", SUFFIX)
    if value.endswith(SUFFIX):
        value = value[: -len(SUFFIX)]
    if value.count("_") == 4:
        value = value.replace("_", "-")
    if len(value) != 36:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@dataclass
class Caller:
    """A resolved SDK client: its tenant, its application (as the MCP endpoint sees it) and an audit actor."""

    client_id: str
    tenant: Any
    auth: RequestAuth
    app_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        return Actor(AuditEvent.ActorType.CLIENT, f"sdk:{self.client_id}", f"AuthSec SDK ({self.auth.app.slug})")

    @property
    def target(self) -> tuple[str, str, str]:
        return ("rbac.application", "", self.auth.app.slug)


UNKNOWN_CLIENT = (
    "Unknown client id. Use the SDK client id shown on the application's page in your AuthSec dashboard "
    "(Applications → your application → SDK client id)."
)


def client_id_of(request: Any, body: dict[str, Any] | None) -> str:
    """The normalised client id of a request (header and body must agree when both are sent)."""
    header = request.headers.get("X-Client-ID")
    in_body = body.get("client_id") if body else None
    if header is None and in_body is None:
        raise SdkError(401, "invalid_client", "A client id is required (X-Client-ID header or client_id).")
    ids = {normalize(value) for value in (header, in_body) if value is not None}
    if None in ids:
        raise SdkError(401, "invalid_client", UNKNOWN_CLIENT)
    if len(ids) != 1:
        raise SdkError(400, "invalid_client", "The X-Client-ID header and the client_id in the body differ.")
    return ids.pop()  # type: ignore[return-value]


def resolve_client(client_id: str, app_name: str = "") -> Caller:
    """Find the tenant and application of a normalised client id; `SdkError` 401 when there is none."""
    from rbac.models import Application
    from sdkmgr.models import SdkClient

    connection.set_schema_to_public()
    entry = (
        SdkClient.objects.select_related("tenant")
        .filter(client_id=client_id, is_active=True, tenant__is_active=True)
        .first()
    )
    if entry is None:
        raise SdkError(401, "invalid_client", UNKNOWN_CLIENT)
    connection.set_tenant(entry.tenant)
    slug = Application.objects.filter(sdk_client_id=client_id, is_active=True).values_list("slug", flat=True).first()
    if slug is None:
        raise SdkError(401, "invalid_client", UNKNOWN_CLIENT)
    # Read fresh (two small queries) rather than through the MCP endpoint's process cache: SDK calls are few and
    # a tools/list that just seeded policy rows must see them at once.
    tenant = TenantRef(entry.tenant.slug, entry.tenant.schema_name, entry.tenant)
    config = load_config(tenant, slug)
    if config is None:
        raise SdkError(401, "invalid_client", UNKNOWN_CLIENT)
    return Caller(client_id=client_id, tenant=entry.tenant, auth=RequestAuth(tenant, config), app_name=app_name[:200])
