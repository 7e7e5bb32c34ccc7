"""Tenant dashboard: choosing which registered tools an application serves (on the application's page).

MCP login sessions have no changelist of their own: a session's id is its MCP client's bearer secret, and a Django
changelist names rows by primary key (in links, checkboxes and URLs). The dashboard's Tokens & sessions page
(`authsec_site.dashboard_tokens`) lists and revokes them by `state`, a hash of the id."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from mcp_endpoint.registry import ensure_loaded, registry
from mcp_endpoint.services import seed_tool_policies
from rbac.admin import ApplicationAdmin
from rbac.models import Application, ToolPolicy


class ApplicationForm(forms.ModelForm):
    serve_tools = forms.MultipleChoiceField(
        label="Serve registered tools",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=(
            "Tools registered in this server's code (@protected_by_AuthSec) that this application does not serve "
            "yet. Each one ticked gets a tool policy seeded from its code-declared requirement; edit it below."
        ),
    )

    class Meta:
        model = Application
        fields = ["slug", "name", "description", "is_active", "auth_mode"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ensure_loaded()
        served = (
            set(ToolPolicy.objects.filter(application=self.instance).values_list("tool_name", flat=True))
            if self.instance.pk
            else set()
        )
        self.fields["serve_tools"].choices = [
            (name, f"{name} — {registry.get(name).description}" if registry.get(name).description else name)  # type: ignore[union-attr]
            for name in sorted(registry.names())
            if name not in served
        ]


class ServedToolsApplicationAdmin(ApplicationAdmin):
    form = ApplicationForm

    def save_extra(self, request: HttpRequest, form: Any) -> None:
        tools = form.cleaned_data.get("serve_tools") or []
        if tools:
            seeded = seed_tool_policies.nested(actor=request.user, application=form.instance, tools=tools)
            messages.success(request, f"Now serving {len(seeded)} more tool(s): {', '.join(seeded)}.")


admin.site.unregister(Application)
admin.site.register(Application, ServedToolsApplicationAdmin)
