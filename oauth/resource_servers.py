"""Resource servers protected by the published SDK's runtime API (`mount_mcp` + `HybridValidator`).

Writes (registration, changes, manifest pushes, tool mappings) are service functions (`audit.writes.service`:
one durable transaction with its event) and bump the server's policy `generation`. Reads build the
`sdk-policy` document in exactly the shape `ScopeMatrixClient` parses, and authenticate the SDK's HTTP Basic
calls with the server's introspection credentials in constant time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlparse

from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from oauth2_provider.settings import oauth2_settings

import audit
from audit import writes
from audit.models import AuditEvent
from audit.recorder import Actor, record
from audit.writes import service
from oauth import issuer
from oauth.models import Client, ResourceServer, ResourceServerTool
from rbac import pins
from rbac.models import Scope, ToolPin, ToolPinSettings
from rbac.pin_definitions import definition

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
MAX_TOOLS = 1000
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_SUGGESTED = 50
# How often a policy fetch is written down (the SDK fetches every 30 s by default).
FETCH_NOTE_SECONDS = 60
M2M = Mapping[str, Iterable[Any]] | None


# --- Registration -----------------------------------------------------------------------------------------------


def new_client_secret() -> str:
    """256 random bits in URL-safe characters: the SDK sends Basic credentials without form-encoding them."""
    return secrets.token_urlsafe(32)


def validate_resource_uri(value: str) -> str:
    """An absolute https URI (http only on a loopback host) without query or fragment (RFC 8707 §2)."""
    uri = (value or "").strip()
    parsed = urlparse(uri)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or not parsed.hostname:
        raise ValidationError("Enter an absolute URI such as https://mcp.example.com/mcp.")
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
        raise ValidationError("Use https; http is accepted for localhost only.")
    if parsed.query or parsed.fragment or "#" in uri:
        raise ValidationError("A resource URI has no query and no fragment.")
    return uri


@service
def create_resource_server(
    *, actor: Any, name: str, resource_uri: str, scopes: Iterable[Scope] = (), client_secret: str | None = None
) -> tuple[ResourceServer, str]:
    """Register a resource server with its own introspection client; returns it and the plaintext secret
    (stored hashed, so this is the only time it can be shown)."""
    secret = client_secret or new_client_secret()
    server = ResourceServer(name=name, resource_uri=resource_uri)
    save_resource_server.nested(server, actor=actor, m2m={"scopes": list(scopes)}, client_secret=secret)
    return server, secret


def _policy_inputs(server: ResourceServer, scopes: Iterable[Scope] | None) -> tuple[Any, ...]:
    """What of a server's own row its policy document (or its SDK settings) reads."""
    return (server.name, server.resource_uri, server.is_active, sorted(scope.pk for scope in scopes or ()))


@service
def save_resource_server(
    server: ResourceServer, *, actor: Any, m2m: M2M = None, client_secret: str | None = None
) -> ResourceServer:
    """Register a new server (its introspection client gets `client_secret`, stored hashed) or change one (name,
    resource URI, supported scopes, active). A change bumps the policy `generation` the SDK reads."""
    server.resource_uri = validate_resource_uri(server.resource_uri)
    stored = ResourceServer.objects.select_for_update().filter(pk=server.pk).first()
    if stored is None:
        if not client_secret:
            raise ValueError("A new resource server needs the secret of its introspection client.")
        server.client = Client.objects.create(
            name=f"{server.name} (resource server)"[:255],
            client_type=Client.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
            client_secret=client_secret,
            is_resource_server=True,
            description=f"Introspection and SDK-policy credentials of the resource server {server.resource_uri}.",
        )
    else:
        scopes = (m2m or {}).get("scopes")
        new_scopes = list(scopes) if scopes is not None else list(stored.scopes.all())
        if _policy_inputs(stored, stored.scopes.all()) != _policy_inputs(server, new_scopes):
            server.generation = stored.generation + 1
    return writes.save(
        actor,
        server,
        m2m=m2m,
        created="oauth.resource_server_created",
        changed="oauth.resource_server_changed",
        data={"resource_server_id": str(server.pk), "client_id": server.client.client_id},
    )


@service
def delete_resource_server(server: ResourceServer, *, actor: Any) -> None:
    """Delete the server, its tools and its introspection client (so its credentials stop working at once)."""
    client = server.client
    pins.forget_resource_server(server.pk)
    writes.delete(
        actor,
        server,
        event="oauth.resource_server_deleted",
        data={"resource_server_id": str(server.pk), "client_id": client.client_id},
    )
    client.delete()


def sdk_settings(server: ResourceServer) -> dict[str, str]:
    """The SDK's environment for this server (`authsec_sdk.runtime.from_env`), secret left out."""
    iss = issuer.issuer_for()
    return {
        "AUTHSEC_ISSUER": iss,
        "AUTHSEC_AUTHORIZATION_SERVER": iss,
        "AUTHSEC_JWKS_URL": f"{iss}/jwks",
        "AUTHSEC_INTROSPECTION_URL": f"{iss}/introspect",
        "AUTHSEC_INTROSPECTION_CLIENT_ID": server.client.client_id,
        "AUTHSEC_INTROSPECTION_CLIENT_SECRET": "<shown once when the server was registered>",
        "AUTHSEC_RESOURCE_SERVER_ID": str(server.pk),
        "AUTHSEC_RESOURCE_URI": server.resource_uri,
        "AUTHSEC_RESOURCE_NAME": server.name,
        "AUTHSEC_POLICY_MODE": "remote_required",
        "AUTHSEC_VALIDATION_MODE": "jwt_and_introspect",
        "AUTHSEC_PUBLISH_MANIFEST": "true",
    }


# --- Authentication of the SDK's calls ----------------------------------------------------------------------------


@functools.cache
def _dummy_hash() -> str:
    return make_password(secrets.token_urlsafe(16), hasher=oauth2_settings.CLIENT_SECRET_HASHER)


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    secret: str


def basic_credentials(request: HttpRequest) -> BasicCredentials | None:
    """`Authorization: Basic base64(id:secret)`; both parts are also form-decoded (RFC 6749 §2.3.1), which
    changes nothing for the URL-safe ids and secrets this server generates."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        return None
    return BasicCredentials(unquote_plus(client_id), unquote_plus(secret))


def authenticate(request: HttpRequest, resource_server_id: str) -> ResourceServer | None:
    """The resource server named in the URL, if the request carries its introspection credentials.

    Unknown ids and wrong credentials take the same path (a hash check against a dummy), so neither the
    answer nor its timing tells which one was wrong.
    """
    credentials = basic_credentials(request)
    try:
        pk = uuid.UUID(resource_server_id)
    except ValueError:
        pk = None
    server = ResourceServer.objects.select_related("client").filter(pk=pk).first() if pk else None
    stored_id = server.client.client_id if server is not None else ""
    stored_hash = server.client.client_secret if server is not None else _dummy_hash()
    given_id = credentials.client_id if credentials else ""
    id_ok = constant_time_compare(given_id, stored_id)
    secret_ok = check_password(credentials.secret if credentials else "", stored_hash)
    if (
        server is not None
        and credentials is not None
        and id_ok
        and secret_ok
        and server.client.status == Client.Status.ACTIVE
    ):
        return server
    audit.record(
        Actor(AuditEvent.ActorType.CLIENT if credentials else AuditEvent.ActorType.ANONYMOUS, given_id[:128], ""),
        "oauth.resource_server_auth_failed",
        target=server,
        outcome=AuditEvent.Outcome.DENY,
        request=request,
        data={
            "resource_server_id": resource_server_id[:64],
            "client_id": given_id[:128],
            "endpoint": request.path.rsplit("/", 1)[-1],
            "reason": "no credentials" if credentials is None else "invalid credentials",
        },
    )
    return None


def client_actor(server: ResourceServer) -> Actor:
    return Actor(AuditEvent.ActorType.CLIENT, server.client.client_id, server.name)


# --- The policy document (GET sdk-policy) ---------------------------------------------------------------------------


def policy_document(server: ResourceServer) -> dict[str, Any]:
    """`{state, policy_complete, reason, tool_policy, scopes_supported, generation}` as the SDK reads it.

    `needs_setup` (deny all) until at least one tool is public or mapped to a scope; after that, tools left
    unmapped are listed without scopes, which the SDK denies. An inactive server gets `disabled` (deny all).
    """
    tools = list(server.tools.prefetch_related("required_scopes").order_by("name"))
    held = held_tools(server)
    tool_policy = []
    unmapped = []
    mapped_scopes: set[str] = set()
    for tool in tools:
        scopes = sorted(scope.name for scope in tool.required_scopes.all())
        public = tool.is_public and not scopes
        if not public and not scopes:
            unmapped.append(tool.name)
        mapped_scopes.update(scopes)
        if tool.name in held:  # listed without scopes, so the SDK hides it and refuses its calls
            tool_policy.append({"name": tool.name, "is_public": False, "required_scopes": [], "held": True})
            continue
        tool_policy.append({"name": tool.name, "is_public": public, "required_scopes": scopes})
    supported = sorted(set(server.scopes.values_list("name", flat=True)) | mapped_scopes)
    if not server.is_active:
        state, complete = "disabled", False
        reason = "This resource server is disabled in the AuthSec dashboard; every tool is denied."
    elif not tools:
        state, complete = "needs_setup", False
        reason = "No tool inventory yet: publish the manifest (AUTHSEC_PUBLISH_MANIFEST=true) or add tools."
    elif len(unmapped) == len(tools):
        state, complete = "needs_setup", False
        reason = "No tool is mapped yet: an admin maps each tool to scopes or marks it public in the dashboard."
    else:
        state, complete = "ready", True
        reason = f"{len(unmapped)} tool(s) not mapped yet, denied: {', '.join(unmapped)}" if unmapped else ""
        if held:
            waiting = f"{len(held)} tool(s) changed and wait for review, denied: {', '.join(sorted(held))}"
            reason = f"{reason}; {waiting}" if reason else waiting
    return {
        "resource_server_id": str(server.pk),
        "resource_uri": server.resource_uri,
        "state": state,
        "policy_complete": complete,
        "reason": reason,
        "tool_policy": tool_policy,
        "scopes_supported": supported,
        "generation": server.generation,
    }


def held_tools(server: ResourceServer) -> set[str]:
    """The server's tools held by tool pinning: their published definition changed and waits for review."""
    mode = ToolPinSettings.current_mode()
    if mode == ToolPinSettings.Mode.OFF:
        return set()
    return {pin.tool_name for pin in ToolPin.objects.filter(resource_server_id=server.pk) if pin.holds(mode)}


def note_policy_fetch(server: ResourceServer, generation: int) -> None:
    """Remember when (and which generation) the SDK last fetched, for the dashboard; at most once a minute."""
    now = timezone.now()
    last = server.policy_fetched_at
    if (
        last is None
        or server.policy_fetched_generation != generation
        or (now - last).total_seconds() > FETCH_NOTE_SECONDS
    ):
        ResourceServer.objects.filter(pk=server.pk).update(policy_fetched_at=now, policy_fetched_generation=generation)


# --- Policy changes -------------------------------------------------------------------------------------------------


def _bump(server: ResourceServer) -> int:
    ResourceServer.objects.filter(pk=server.pk).update(generation=F("generation") + 1, updated_at=timezone.now())
    server.refresh_from_db(fields=["generation", "updated_at"])
    return server.generation


@service
def policy_changed(*, actor: Any, server: ResourceServer, data: dict[str, Any] | None = None) -> int:
    """Bump the generation after a change to the server's tools and audit the policy now in force (called
    ``.nested`` by the writes of a tool). Mapping a tool approves its published definition: tools mapped without a
    pin yet are pinned (`rbac.pins`)."""
    mapped = server.tools.filter(models.Q(is_public=True) | models.Q(required_scopes__isnull=False))
    names = set(mapped.values_list("name", flat=True))
    pins.pin_mapped.nested(actor=actor, resource_server_id=server.pk, tool_names=names)
    generation = _bump(server)
    document = policy_document(server)
    record(
        actor,
        "oauth.resource_server_policy_changed",
        target=server,
        data={
            **(data or {}),
            "resource_server_id": str(server.pk),
            "generation": generation,
            "state": document["state"],
            "tool_policy": document["tool_policy"],
        },
    )
    return generation


@service
def save_tool(tool: ResourceServerTool, *, actor: Any, m2m: M2M = None) -> ResourceServerTool:
    """Save a tool's mapping (public, or the scopes it requires; not both), or a tool an admin adds by hand."""
    given = (m2m or {}).get("required_scopes")
    if given is None:  # not among the values given: the tool keeps its scopes
        given = tool.required_scopes.all() if tool.pk is not None else []
    scopes = list(given)
    if tool.is_public and scopes:
        raise ValidationError("A public tool needs no scopes: clear the scopes or untick public.")
    tool.save()
    tool.required_scopes.set(scopes)
    policy_changed.nested(
        actor=actor,
        server=tool.resource_server,
        data={"tool": tool.name, "is_public": tool.is_public, "required_scopes": sorted(s.name for s in scopes)},
    )
    return tool


@service
def map_tool(
    *, actor: Any, tool: ResourceServerTool, is_public: bool, required_scopes: Iterable[Scope]
) -> ResourceServerTool:
    """Make a tool public, or require one of `required_scopes` (a tool cannot be both)."""
    tool.is_public = is_public
    return save_tool.nested(tool, actor=actor, m2m={"required_scopes": list(required_scopes)})


@service
def delete_tool(tool: ResourceServerTool, *, actor: Any) -> None:
    """Remove a tool from the server's inventory (a later manifest may push it again, unmapped)."""
    server, name = tool.resource_server, tool.name
    tool.delete()
    policy_changed.nested(actor=actor, server=server, data={"tool": name, "removed": True})


def bump_all_generations() -> None:
    """A scope was renamed or deleted: every server's policy may read differently now."""
    ResourceServer.objects.update(generation=F("generation") + 1)


# --- Manifest (PUT sdk-manifest) ------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """The manifest body is not what the SDK sends; the message says what is wrong."""


@dataclass
class ManifestResult:
    generation: int
    tools: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def _text(entry: dict[str, Any], key: str, limit: int, where: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ManifestError(f"{where}: '{key}' must be a string.")
    if len(value) > limit:
        raise ManifestError(f"{where}: '{key}' is longer than {limit} characters.")
    return value


def _object(entry: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, dict):
        raise ManifestError(f"{where}: '{key}' must be an object.")
    return value


def parse_manifest(payload: Any) -> list[dict[str, Any]]:
    """`{"tools": [{name, title?, description?, input_schema?, annotations?, suggested_scopes?}]}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("tools"), list):
        raise ManifestError('The manifest must be a JSON object with a "tools" list.')
    entries = payload["tools"]
    if len(entries) > MAX_TOOLS:
        raise ManifestError(f"A manifest lists at most {MAX_TOOLS} tools.")
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"tools[{index}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where} must be an object.")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ManifestError(f"{where}: 'name' must be a non-empty string without surrounding spaces.")
        if len(name) > MAX_NAME or not name.isprintable():
            raise ManifestError(f"{where}: 'name' must be printable and at most {MAX_NAME} characters.")
        if name in seen:
            raise ManifestError(f"{where}: the tool '{name}' is listed twice.")
        seen.add(name)
        suggested = entry.get("suggested_scopes") or []
        if not isinstance(suggested, list) or not all(isinstance(s, str) and 0 < len(s) <= 100 for s in suggested):
            raise ManifestError(f"{where}: 'suggested_scopes' must be a list of scope names.")
        if len(suggested) > MAX_SUGGESTED:
            raise ManifestError(f"{where}: at most {MAX_SUGGESTED} suggested scopes.")
        tools.append(
            {
                "name": name,
                "title": _text(entry, "title", MAX_NAME, where),
                "description": _text(entry, "description", MAX_DESCRIPTION, where),
                "input_schema": _object(entry, "input_schema", where),
                "annotations": _object(entry, "annotations", where),
                "suggested_scopes": sorted(set(suggested)),
            }
        )
    return tools


@service
def publish_manifest(
    *, server: ResourceServer, tools: list[dict[str, Any]], request: HttpRequest | None = None
) -> ManifestResult:
    """Replace the server's tool inventory with `tools` (from `parse_manifest`). Mappings are kept: a tool
    missing from the manifest is only flagged, so it keeps its mapping if it comes back."""
    server = ResourceServer.objects.select_for_update().select_related("client").get(pk=server.pk)
    existing = {tool.name: tool for tool in server.tools.all()}
    names = {entry["name"] for entry in tools}
    added = sorted(names - set(existing))
    removed = sorted(name for name, tool in existing.items() if tool.in_manifest and name not in names)
    returned = sorted(name for name, tool in existing.items() if not tool.in_manifest and name in names)
    for entry in tools:
        tool = existing.get(entry["name"])
        if tool is None:
            ResourceServerTool.objects.create(resource_server=server, in_manifest=True, **entry)
            continue
        for key, value in entry.items():
            setattr(tool, key, value)
        tool.in_manifest = True
        tool.save()
    server.tools.filter(name__in=removed).update(in_manifest=False, updated_at=timezone.now())
    server.manifest_published_at = timezone.now()
    server.save(update_fields=["manifest_published_at", "updated_at"])
    pinning = _observe_manifest(server, tools)
    held = sorted(pinning["held"])
    generation = _bump(server) if added or removed or returned or pinning["changed"] else server.generation
    audit.record(
        client_actor(server),
        "oauth.resource_server_manifest_published",
        target=server,
        request=request,
        data={
            "resource_server_id": str(server.pk),
            "tools": len(tools),
            "added": added,
            "removed": removed,
            "generation": generation,
            "held": held,
            "warnings": pinning["warnings"],
        },
    )
    return ManifestResult(generation=generation, tools=len(tools), added=added, removed=removed, held=held)


def _observe_manifest(server: ResourceServer, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Hand each published definition to tool pinning (`rbac.pins`): a mapped tool is pinned at first sight, a
    changed one is drift (held in `hold` mode); an unmapped tool's definition is kept for its mapping. Returns
    the tools now held, whether any pin changed, and the poisoning warnings by tool (pattern ids)."""
    mode = ToolPinSettings.current_mode()
    if mode == ToolPinSettings.Mode.OFF:
        return {"held": set(), "changed": False, "warnings": {}}
    known = {pin.tool_name: pin for pin in ToolPin.objects.filter(resource_server_id=server.pk)}
    mapped = set(
        server.tools.filter(models.Q(is_public=True) | models.Q(required_scopes__isnull=False)).values_list(
            "name", flat=True
        )
    )
    names = [entry["name"] for entry in tools]
    changed = False
    warnings: dict[str, list[str]] = {}
    for entry in tools:
        value = definition(
            entry["name"],
            title=entry["title"],
            description=entry["description"],
            input_schema=entry["input_schema"],
            annotations=entry["annotations"],
        )
        observed = pins.seen(value, names)
        if observed.warnings:
            warnings[entry["name"]] = sorted({warning["pattern"] for warning in observed.warnings})
        pin = known.get(entry["name"])
        if pin is not None and pin.seen_hash == observed.hash:
            continue
        before = pin.state if pin is not None else None
        pin = pins.observe_tool.nested(
            actor=client_actor(server),
            observed=observed,
            source=ToolPin.Source.MANIFEST,
            resource_server_id=server.pk,
            tool_name=entry["name"],
            pin_first_sight=entry["name"] in mapped,
            mode=mode,
        )
        changed |= pin is not None and pin.state != before
        if pin is not None:
            known[entry["name"]] = pin
    held = {name for name, pin in known.items() if name in set(names) and pin.holds(mode)}
    return {"held": held, "changed": changed, "warnings": warnings}
