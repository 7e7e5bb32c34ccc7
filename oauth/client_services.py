"""Writes on a tenant's OAuth clients and registration policy: approval of held registrations, and the
dynamic-registration mode. Each change is audited in its own transaction (STYLE: one service per write)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

import audit
from oauth.models import Client, ProviderSettings

_STATUS_ACTIONS = {
    Client.Status.ACTIVE: "oauth.client_approved",
    Client.Status.REJECTED: "oauth.client_rejected",
}


@transaction.atomic
def set_client_status(*, actor: Any, client: Client, status: str, request: HttpRequest | None = None) -> bool:
    """Approve (active) or reject a client; True when its status changed.

    The row is locked while it changes, so two admins clicking at once write one event; an approval takes
    effect on the client's next request (DOT asks `Client.is_usable` every time)."""
    if status not in _STATUS_ACTIONS:
        raise ValueError(f"Unknown client status {status!r}")
    locked = Client.objects.select_for_update().get(pk=client.pk)
    if locked.status == status:
        return False
    before = locked.status
    locked.status = status
    locked.save(update_fields=["status", "updated"])
    client.status = status
    audit.record(
        actor,
        _STATUS_ACTIONS[status],
        target=locked,
        request=request,
        data={"client_id": locked.client_id, "name": locked.name, "before": before, "after": status},
    )
    return True


@transaction.atomic
def set_dynamic_registration(*, actor: Any, mode: str) -> bool:
    """Set the tenant's dynamic-registration mode (closed, approval, open); True when it changed."""
    if mode not in ProviderSettings.Registration.values:
        raise ValueError(f"Unknown registration mode {mode!r}")
    ProviderSettings.current()  # the single row exists before it is locked
    current = ProviderSettings.objects.select_for_update().get(pk=1)
    if current.dynamic_registration == mode:
        return False
    before = current.dynamic_registration
    current.dynamic_registration = mode
    current.save(update_fields=["dynamic_registration"])
    audit.record(actor, "oauth.registration_mode_changed", target=current, data={"before": before, "after": mode})
    return True
