"""Helpers for the SDK runtime API: a registered resource server in acme, Basic credentials, a manifest."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client as HttpClient

from oauth import resource_servers as rs
from oauth.models import ResourceServer
from rbac.models import Scope
from tenants.models import Tenant

RS_URI = "https://notes.example.com/mcp"
MANIFEST = {
    "tools": [
        {"name": "read_notes", "description": "Read the team's notes.", "input_schema": {"type": "object"}},
        {"name": "write_note", "title": "Write", "suggested_scopes": ["write"], "annotations": {"readOnlyHint": False}},
    ]
}


@dataclass
class Registered:
    server: ResourceServer
    secret: str

    @property
    def client_id(self) -> str:
        return self.server.client.client_id

    def url(self, endpoint: str, tenant: str = "acme") -> str:
        return f"/t/{tenant}/oauth/authsec/resource-servers/{self.server.pk}/{endpoint}"


def raw_basic(client_id: str, secret: str) -> dict[str, str]:
    """What the SDK sends (aiohttp.BasicAuth): base64 of `id:secret`, no form-encoding."""
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def get_policy(registered: Registered, headers: dict[str, str] | None = None, tenant: str = "acme") -> HttpResponse:
    auth = raw_basic(registered.client_id, registered.secret) if headers is None else headers
    return HttpClient(enforce_csrf_checks=True).get(registered.url("sdk-policy", tenant), **auth)


def put_manifest(
    registered: Registered, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> HttpResponse:
    import json

    auth = raw_basic(registered.client_id, registered.secret) if headers is None else headers
    data = raw if raw is not None else json.dumps(MANIFEST if body is None else body)
    return HttpClient(enforce_csrf_checks=True).put(
        registered.url("sdk-manifest"), data=data, content_type="application/json", **auth
    )


@pytest.fixture
def scopes(in_acme: Tenant) -> dict[str, Scope]:
    return {name: Scope.objects.get_or_create(name=name)[0] for name in ("read", "write", "admin")}


@pytest.fixture
def registered(in_acme: Tenant, scopes: dict[str, Scope]) -> Registered:
    server, secret = rs.create_resource_server(
        actor="tests", name="Notes MCP", resource_uri=RS_URI, scopes=[scopes["read"], scopes["write"]]
    )
    return Registered(server, secret)
