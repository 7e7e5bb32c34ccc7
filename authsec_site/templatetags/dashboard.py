"""`{% model_help opts as help %}`: the dashboard's description of a model page (authsec_site.dashboard_help)."""

from __future__ import annotations

from typing import Any

from django import template

from authsec_site.dashboard_help import ModelHelp, help_for

register = template.Library()


@register.simple_tag
def model_help(opts: Any) -> ModelHelp | None:
    return help_for(opts.label_lower) if opts is not None else None
