"""`{% tenant_home as home %}`: the dashboard home's cards (`authsec_site.home`) for the admin index template."""

from __future__ import annotations

from typing import Any

from django import template

from authsec_site.home import Home, gather

register = template.Library()


@register.simple_tag(takes_context=True)
def tenant_home(context: dict[str, Any]) -> Home:
    """The cards the signed-in staff member may see, read once per page."""
    return gather(context["request"])
