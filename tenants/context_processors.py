from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def tenant(request: HttpRequest) -> dict[str, Any]:
    """Expose the current tenant (None on platform pages) to templates."""
    current = getattr(request, "tenant", None)
    if current is not None and current.schema_name == "public":
        current = None
    return {"current_tenant": current}
