"""The two RBAC pages beyond CRUD in the tenant dashboard: effective permissions and the policy simulator.

Both explain decisions made by `rbac.engine.decide` — the same function the MCP endpoint uses.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.models import User
from audit.queries import review_link
from rbac.engine import KINDS, Decision, Grants, decide
from rbac.grants import effective_grants, grants_from_claims
from rbac.models import Application, ToolPolicy


def tool_decisions(grants: Grants | None, application: Application) -> list[tuple[ToolPolicy, Decision]]:
    """Every tool policy of `application` with the engine's decision for `grants`."""
    return [(policy, decide(grants, policy.requirement())) for policy in application.tool_policies.all()]


def _require(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def effective_permissions(request: HttpRequest, user_id: int) -> HttpResponse:
    """A user's grants with where each came from, and every tool of every active application, decided."""
    _require(request, "accounts.view_user", "rbac.view_toolpolicy")
    subject = get_object_or_404(User, pk=user_id)
    grants = effective_grants(subject)
    rows = []
    if grants is not None:
        for kind in KINDS:
            for name in sorted(getattr(grants, kind)):
                rows.append((kind[:-1], name, ", ".join(grants.sources.get((kind, name), ()))))
    applications = [
        (application, tool_decisions(grants, application))
        for application in Application.objects.filter(is_active=True).prefetch_related("tool_policies")
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"Effective permissions of {subject.email}",
        "subject": subject,
        "grant_rows": rows,
        "applications": applications,
        "inactive": grants is None,
        "audit_url": review_link(request.user, actor=subject.email),
    }
    return render(request, "rbac/effective_permissions.html", context)


def _claim_field(kind: str) -> forms.CharField:
    return forms.CharField(required=False, label=kind.capitalize(), help_text="Comma-separated names")


class SimulatorForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.all(), to_field_name="slug")
    # A typed email, not a select of every user: tenants can have many users.
    user = forms.ModelChoiceField(
        queryset=User.objects.all(),
        required=False,
        to_field_name="email",
        widget=forms.EmailInput,
        help_text="Email of a user whose grants to use…",
        error_messages={"invalid_choice": "No user with that email in this tenant."},
    )
    roles = _claim_field("roles")
    groups = _claim_field("groups")
    scopes = _claim_field("scopes")
    resources = _claim_field("resources")
    permissions = _claim_field("permissions")

    def claims(self) -> dict[str, list[str]]:
        return {
            kind: [item.strip() for item in self.cleaned_data.get(kind, "").split(",") if item.strip()]
            for kind in KINDS
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        has_claims = any(data.get(kind) for kind in KINDS)
        if data.get("user") and has_claims:
            raise forms.ValidationError("Pick a user or type claims, not both.")
        return data


def simulator(request: HttpRequest) -> HttpResponse:
    """Pick a user or type claim lists, pick an application: see every tool's decision and why."""
    _require(request, "rbac.view_toolpolicy")
    form = SimulatorForm(request.GET or None)
    result: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        application = form.cleaned_data["application"]
        subject = form.cleaned_data["user"]
        if subject is not None:
            _require(request, "accounts.view_user")  # a user's grants are theirs to see only (as in the API)
            grants = effective_grants(subject)
            ignored: dict[str, list[str]] = {}
            who = subject.email + ("" if grants is not None else " (inactive: denied everything)")
        else:
            grants, ignored = grants_from_claims(form.claims())
            who = "the typed claims"
        result = {
            "application": application,
            "who": who,
            "grants": grants.as_claims() if grants is not None else None,
            "ignored": ignored,
            "decisions": tool_decisions(grants, application),
        }
    context = {**admin.site.each_context(request), "title": "Policy simulator", "form": form, **result}
    return render(request, "rbac/simulator.html", context)
