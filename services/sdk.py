"""`ServiceAccessSDK`: the seed's API for tool code to read a service's credentials.

    sdk = ServiceAccessSDK(session)
    token = await sdk.get_service_token("GitHub API Integration")

The caller is checked against the service's access requirement with the one decision engine, through
`rbac.principal.authorize`, over the user's effective grants read from the tenant database — never over the
lists a session object carries, whose scopes can only narrow them (a bearer token's, as the MCP endpoint passes
them). Every read is audited (who, tool, service, version; never the value). The
secret comes from Vault with the tenant's own credentials; a process cache keyed by version keeps it at
most SERVICES_CACHE_SECONDS (≤ 60 s) and a rotation, which moves the version, makes it miss at once.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django_tenants.utils import schema_context

import audit
from audit import context as audit_context
from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import vault
from rbac.grants import grants_for_user_id
from rbac.principal import Principal, authorize


class ServiceAccessError(Exception):
    """A service's credentials could not be given to the caller; the message is safe to show to an MCP client."""


class ServiceNotFound(ServiceAccessError):
    """No service of that name exists in the tenant."""


class ServiceAccessDenied(ServiceAccessError):
    """The calling user does not meet the service's access requirement."""


class ServiceUnavailable(ServiceAccessError):
    """The credential store (Vault) could not be reached or has no usable secret for the service."""


_cache: dict[tuple[str, int, int], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()
CACHE_MAX = 1_000
ANONYMOUS = Actor(AuditEvent.ActorType.ANONYMOUS, "", "anonymous")


def drop_cached(schema_name: str, service_id: int | None = None) -> None:
    """Forget cached secrets of one service (or all of a tenant's)."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == schema_name and (service_id is None or k[1] == service_id)]:
            _cache.pop(key, None)


def _secret(schema: str, service_id: int, path: str, version: int) -> dict[str, Any]:
    key = (schema, service_id, version)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    data, _ = vault.tenant_kv_read(schema, path, version)
    ttl = min(settings.SERVICES_CACHE_SECONDS, 60)
    if ttl > 0:
        with _cache_lock:
            if len(_cache) >= CACHE_MAX:
                _cache.clear()
            _cache[key] = (now + ttl, data)
    return data


def _user_id(user_info: Any) -> int | None:
    if not isinstance(user_info, dict):
        return None
    value = user_info.get("user_id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _principal(session: Any, user: Any, user_info: Any) -> Principal | None:
    """The caller: `user`'s grants from the database; the scopes listed in `user_info` act as its token's (a bearer
    token narrower than its user narrows service reads the same way), so they never widen the grants."""
    if user is None:
        return None
    claimed = user_info.get("scopes") if isinstance(user_info, dict) else None
    return Principal(
        user_id=user.pk,
        email=user.email,
        tenant_slug=str(getattr(session, "tenant_id", "") or ""),
        grants=grants_for_user_id(user.pk),
        token_scopes=frozenset(str(scope) for scope in claimed) if isinstance(claimed, list) else None,
    )


def read_credentials(session: Any, name: str) -> dict[str, Any]:
    """The sync core of `get_service_credentials` (runs in a worker thread; opens the session's schema)."""
    from accounts.models import User
    from services.models import Service

    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ServiceNotFound("A service name (1-128 characters) is required.")
    schema = getattr(session, "schema_name", None)
    if not isinstance(schema, str) or not schema or schema == "public":
        raise ServiceAccessDenied("Service credentials can only be read inside a tenant.")
    user_info = getattr(session, "user_info", None)
    tool = getattr(session, "tool", None) or ""
    application = getattr(session, "application", None) or ""
    context = audit_context.RequestContext(request_id=str(getattr(session, "request_id", "") or "")[:64])
    with schema_context(schema), audit_context.bind(context):
        user_id = _user_id(user_info)
        user = User.objects.filter(pk=user_id, is_active=True).first() if user_id is not None else None
        actor = Actor(AuditEvent.ActorType.USER, str(user.pk), user.email) if user else ANONYMOUS
        service = Service.objects.filter(name=name).first()
        details = {"service": name, "tool": tool, "application": application}
        if service is None:
            audit.record(actor, "service.read", data=details, outcome=AuditEvent.Outcome.DENY)
            raise ServiceNotFound(f'The service "{name}" is not configured for this tenant.')
        decision = authorize(_principal(session, user, user_info), service.requirement())
        if not decision.allowed:
            audit.record(
                actor,
                "service.read",
                target=service,
                data={**details, "reason": decision.reason},
                outcome=AuditEvent.Outcome.DENY,
            )
            raise ServiceAccessDenied(f'You are not permitted to use the service "{name}".')
        if not service.vault_version:
            audit.record(
                actor, "service.read", target=service, data={**details, "reason": "no secret stored"},
                outcome=AuditEvent.Outcome.FAILURE,
            )  # fmt: skip
            raise ServiceUnavailable(f'The service "{name}" has no credentials stored yet.')
        try:
            credentials = _secret(schema, service.pk, service.vault_path, service.vault_version)
        except vault.VaultError as exc:
            audit.record(
                actor,
                "service.read",
                target=service,
                data={**details, "vault_version": service.vault_version, "reason": f"vault {exc.reason}"},
                outcome=AuditEvent.Outcome.FAILURE,
            )
            raise ServiceUnavailable(
                f'The credentials of "{name}" cannot be read right now (the credential store is unavailable); '
                "try again shortly."
            ) from None
        audit.record(
            actor,
            "service.read",
            target=service,
            data={**details, "vault_version": service.vault_version},
            outcome=AuditEvent.Outcome.ALLOW,
        )
        return {
            "service_id": str(service.pk),
            "service_name": service.name,
            "service_type": service.service_type,
            "auth_type": service.auth_type,
            "url": service.base_url,
            "credentials": dict(credentials),
            "metadata": dict(service.metadata),
            "retrieved_at": datetime.now(UTC).isoformat(),
        }


def _read_in_thread(session: Any, name: str) -> dict[str, Any]:
    close_old_connections()  # a worker thread's connection may have gone stale since its last use
    try:
        return read_credentials(session, name)
    finally:
        close_old_connections()


_read = sync_to_async(_read_in_thread, thread_sensitive=False)


class ServiceAccessSDK:
    """Reads service credentials for the user of a tool session (see the module docstring)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def get_service_credentials(self, name: str) -> dict[str, Any]:
        """{service_id, service_name, service_type, auth_type, url, credentials, metadata, retrieved_at}."""
        return await _read(self.session, name)

    async def get_service_token(self, name: str) -> str:
        """The service's token: ``credentials.access_token`` (the seed's), else the type's primary secret."""
        from services.credentials import PRIMARY_KEY

        details = await self.get_service_credentials(name)
        credentials = details["credentials"]
        token = credentials.get("access_token") or credentials.get(PRIMARY_KEY.get(details["service_type"], ""))
        if not token:
            raise ServiceUnavailable(f'The service "{name}" has no token stored.')
        return str(token)
