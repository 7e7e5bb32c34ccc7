"""Services helpers: tool sessions, services with secrets in real OpenBao, values no test can hit by chance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from accounts.models import User
from authsec_site.lib import vault
from services import services
from services.models import Service


@dataclass
class Session:
    """Duck-typed like `mcp_endpoint.handlers.ToolSession`."""

    schema_name: str
    tenant_id: str
    user_info: dict[str, Any] | None
    application: str = "demo"
    tool: str | None = "list_my_repos"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def session_for(user: User | None, tenant: str = "acme", **user_info: Any) -> Session:
    info = None
    if user is not None:
        info = {
            "user_id": user.pk,
            "email": user.email,
            "tenant_id": tenant,
            "roles": [],
            "groups": [],
            # No "scopes" unless given: a list there is a bearer token's scopes, which narrow the user's grants.
            "resources": [],
            "permissions": [],
            **user_info,
        }
    return Session(schema_name=f"tenant_{tenant}", tenant_id=tenant, user_info=info)


def unique_secret(label: str = "secret") -> str:
    """A value that cannot appear anywhere by chance, so searches for it prove a leak."""
    return f"{label}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def make_service(credentials: dict[str, str] | None = None, **fields: Any) -> Service:
    fields.setdefault("name", f"Service {uuid.uuid4().hex[:10]}")
    fields.setdefault("base_url", "https://api.example.test")
    fields.setdefault("scopes", ["read"])
    return services.create_service(actor="tests", credentials=credentials, **fields)


def vault_value(service: Service, version: int | None = None) -> tuple[dict[str, Any], int]:
    return vault.tenant_kv_read(connection.schema_name, service.vault_path, version)
