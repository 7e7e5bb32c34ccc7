"""Template context: how many approval requests wait for the signed-in user (the dashboard home's count)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest

from approvals import services


def pending_approvals(request: HttpRequest) -> dict[str, Any]:
    """`pending_approvals_count`, computed only when a template reads it, and only in a tenant."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or connection.schema_name == "public":
        return {}
    return {"pending_approvals_count": lambda: services.pending_count_for(user)}
