"""The tenant dashboard's home panel of client registrations waiting for an administrator."""

from __future__ import annotations

from typing import Any

from django import template

from oauth.models import Client

register = template.Library()

SHOWN = 10  # the rest are one click away, in the filtered client list


@register.inclusion_tag("admin/oauth/pending_clients.html", takes_context=True)
def pending_clients(context: dict[str, Any]) -> dict[str, Any]:
    """Count and first few pending clients, for staff who may see clients (buttons for those who may change them)."""
    request = context["request"]
    if not request.user.has_perm("oauth.view_client") and not request.user.has_perm("oauth.change_client"):
        return {"visible": False}
    pending = Client.objects.filter(status=Client.Status.PENDING).order_by("-created")
    return {
        "visible": True,
        "count": pending.count(),
        "clients": list(pending[:SHOWN]),
        "can_decide": request.user.has_perm("oauth.change_client"),
    }
