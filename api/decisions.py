"""Read-only answers of the decision engine over the API: a user's effective permissions and the policy
simulator. Decisions always come from `rbac.engine.decide`; nothing here re-implements them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import User
from api.fields import user_field
from api.serializers import UserSerializer
from rbac.engine import KINDS, Decision, Grants
from rbac.grants import effective_grants, grants_from_claims
from rbac.models import Application
from rbac.views import tool_decisions as dashboard_tool_decisions  # the dashboard's: one way to list decisions

# --- results -------------------------------------------------------------------------------------------------


def _decision(tool: str, decision: Decision, approval: str = "none") -> dict[str, Any]:
    return {
        "tool": tool,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "missing": {kind: list(names) for kind, names in decision.missing.items()},
        "approval": approval,
    }


def tool_decisions(grants: Grants | None, application: Application) -> list[dict[str, Any]]:
    """`decide` for every tool policy of `application` (disabled ones included: they say so)."""
    return [
        _decision(policy.tool_name, decision, policy.approval_text())
        for policy, decision in dashboard_tool_decisions(grants, application)
    ]


def grants_with_sources(grants: Grants | None) -> dict[str, list[dict[str, Any]]]:
    if grants is None:
        return {kind: [] for kind in KINDS}
    return {
        kind: [
            {"name": name, "sources": list(grants.sources.get((kind, name), ()))}
            for name in sorted(getattr(grants, kind))
        ]
        for kind in KINDS
    }


def effective_permissions(user: User) -> dict[str, Any]:
    """What `user` holds and, for each active application, which tools that lets them see and call.

    An inactive user holds nothing (the engine sees them as unauthenticated), which the answer shows.
    """
    grants = effective_grants(user)
    applications = Application.objects.filter(is_active=True).prefetch_related("tool_policies")
    return {
        "user": UserSerializer(user).data,
        "grants": grants_with_sources(grants),
        "applications": [
            {"id": app.pk, "slug": app.slug, "name": app.name, "tools": tool_decisions(grants, app)}
            for app in applications
        ],
    }


def simulate(application: Application, data: dict[str, Any]) -> dict[str, Any]:
    """Each tool's decision for a user of this tenant, or for claimed names (kept only if they exist here)."""
    user: User | None = data.get("user")
    ignored: dict[str, list[str]] = {}
    if user is not None:
        grants = effective_grants(user)
    else:
        grants, ignored = grants_from_claims({kind: data.get(kind) or [] for kind in KINDS})
    return {
        "application": application.slug,
        "user": UserSerializer(user).data if user is not None else None,
        "grants": grants.as_claims() if grants is not None else {kind: [] for kind in KINDS},
        "ignored": ignored,
        "tools": tool_decisions(grants, application),
    }


# --- request and response shapes (responses are documented for OpenAPI) -----------------------------------------


def _names(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=201), **kwargs)


class SimulateSerializer(serializers.Serializer):
    """Either a user of this tenant, or claim lists as a token would carry them (unknown names are ignored)."""

    user = user_field(required=False, allow_null=True)
    roles = _names(required=False)
    groups = _names(required=False)
    scopes = _names(required=False)
    resources = _names(required=False)
    permissions = _names(required=False, help_text="resource:action names")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("user") is not None and any(attrs.get(kind) for kind in KINDS):
            raise serializers.ValidationError(
                {"non_field_errors": ["Simulate either a user or a set of claims, not both."]}
            )
        return attrs


class ToolDecisionSerializer(serializers.Serializer):
    tool = serializers.CharField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    missing = serializers.DictField(child=_names(), help_text="For denials: what would have been enough, per kind.")
    approval = serializers.CharField(help_text='The tool\'s approval policy in words ("none" when calls run at once).')


class GrantItemSerializer(serializers.Serializer):
    name = serializers.CharField()
    sources = _names(help_text='Where it comes from, e.g. "direct", "role admin (via group devops)".')


class GrantsWithSourcesSerializer(serializers.Serializer):
    roles = GrantItemSerializer(many=True)
    groups = GrantItemSerializer(many=True)
    scopes = GrantItemSerializer(many=True)
    resources = GrantItemSerializer(many=True)
    permissions = GrantItemSerializer(many=True)


class ApplicationDecisionsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    tools = ToolDecisionSerializer(many=True)


class EffectivePermissionsSerializer(serializers.Serializer):
    user = UserSerializer()
    grants = GrantsWithSourcesSerializer()
    applications = ApplicationDecisionsSerializer(many=True)


class GrantNamesSerializer(serializers.Serializer):
    roles = _names()
    groups = _names()
    scopes = _names()
    resources = _names()
    permissions = _names()


class SimulationResultSerializer(serializers.Serializer):
    application = serializers.CharField()
    user = UserSerializer(allow_null=True)
    grants = GrantNamesSerializer(help_text="The names that counted.")
    ignored = serializers.DictField(child=_names(), help_text="Claimed names that do not exist in this tenant.")
    tools = ToolDecisionSerializer(many=True)
