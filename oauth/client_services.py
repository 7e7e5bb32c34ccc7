"""Writes on a tenant's OAuth clients and provider settings: the dashboard's client pages (add, change, delete),
approval of held registrations, the provider settings and the dynamic-registration mode. Each is an
`audit.writes.service` (one durable transaction with its one event; ``.nested`` inside a caller's)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest

from audit import writes
from audit.recorder import record
from audit.writes import service
from oauth.models import Client, ProviderSettings

M2M = Mapping[str, Iterable[Any]] | None


@service
def save_client(client: Client, *, actor: Any, m2m: M2M = None) -> Client:
    """A client added or changed by an admin (its secret is stored hashed and never in the event)."""
    return writes.save(
        actor,
        client,
        m2m=m2m,
        created="oauth.client_created",
        changed="oauth.client_changed",
        data={"client_id": client.client_id},
    )


@service
def delete_client(client: Client, *, actor: Any) -> None:
    """Delete a client (dashboard, or the client itself through RFC 7592) and, with it, its tokens and grants."""
    writes.delete(actor, client, event="oauth.client_deleted", data={"client_id": client.client_id})


@service
def set_client_status(*, actor: Any, client: Client, status: str, request: HttpRequest | None = None) -> bool:
    """Approve (active) or reject a client; True when its status changed.

    The row is locked while it changes, so two admins clicking at once write one event; an approval takes
    effect on the client's next request (DOT asks `Client.is_usable` every time)."""
    if status not in (Client.Status.ACTIVE, Client.Status.REJECTED):
        raise ValueError(f"Unknown client status {status!r}")
    locked = Client.objects.select_for_update().get(pk=client.pk)
    if locked.status == status:
        return False
    before = locked.status
    locked.status = status
    locked.save(update_fields=["status", "updated"])
    client.status = status
    record(
        actor,
        "oauth.client_approved" if status == Client.Status.ACTIVE else "oauth.client_rejected",
        target=locked,
        request=request,
        data={"client_id": locked.client_id, "name": locked.name, "before": before, "after": status},
    )
    return True


@service
def set_clients_status(
    clients: Iterable[Client], *, actor: Any, status: str, request: HttpRequest | None = None
) -> int:
    """Approve or reject several clients at once (a dashboard bulk action); returns how many changed."""
    return sum(
        set_client_status.nested(actor=actor, client=client, status=status, request=request) for client in clients
    )


@service
def save_provider_settings(settings: ProviderSettings, *, actor: Any, m2m: M2M = None) -> ProviderSettings:
    """The tenant's OAuth provider settings (one row): registration mode, CIMD."""
    return writes.save(
        actor,
        settings,
        m2m=m2m,
        created="oauth.provider_settings_created",
        changed="oauth.provider_settings_changed",
    )


@service
def set_dynamic_registration(*, actor: Any, mode: str) -> bool:
    """Set the tenant's dynamic-registration mode (closed, approval, open); True when it changed."""
    if mode not in ProviderSettings.Registration.values:
        raise ValueError(f"Unknown registration mode {mode!r}")
    ProviderSettings.current()  # the single row exists before it is locked
    current = ProviderSettings.objects.select_for_update().get(pk=1)
    if current.dynamic_registration == mode:
        return False
    current.dynamic_registration = mode
    save_provider_settings.nested(current, actor=actor)
    return True
