"""The self-service account page of a tenant (/t/<tenant>/account/), for every signed-in user, staff or not.

It reads across the layers — the tools the user may use (`rbac.matrix`, i.e. the one engine), their OAuth consents
and refresh tokens (`oauth`), their MCP login-tool sessions (`mcp_endpoint`) and their own audit events — so it lives
in the wiring above every app. Revokes go through those apps' services with the user as the actor, and only ever
find the user's own rows: another user's id is a 404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from oauth2_provider.models import get_refresh_token_model

from audit.queries import user_activity
from mcp_endpoint.models import AuthSession
from mcp_endpoint.services import revoke_auth_sessions
from oauth import services as oauth_services
from oauth.models import Consent
from rbac import matrix
from rbac.connect import urls_for
from rbac.engine import KINDS, Decision
from rbac.grants import effective_grants
from rbac.models import Application, ToolPolicy

LIVE_SESSION = (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED)


@dataclass(frozen=True)
class ApplicationTools:
    application: Application
    endpoint: str
    tools: list[tuple[ToolPolicy, Decision]]

    @property
    def allowed_count(self) -> int:
        return sum(1 for _policy, decision in self.tools if decision.allowed)


def tools_of(user: Any, tenant_slug: str) -> list[ApplicationTools]:
    """Every active application with each of its tools decided for `user` by the engine (`rbac.matrix`'s rows)."""
    found = []
    for application in Application.objects.filter(is_active=True).order_by("name", "pk"):
        policies = matrix.tool_policies(application)
        row = next(matrix.decide_rows([user], policies))
        found.append(
            ApplicationTools(
                application, urls_for(tenant_slug, application).endpoint, list(zip(policies, row.cells, strict=True))
            )
        )
    return found


def grant_sources(user: Any) -> list[tuple[str, str, str]]:
    """(kind, name, where it came from) for every grant the user holds: the "why" behind each allowed tool."""
    grants = effective_grants(user)
    if grants is None:
        return []
    return [
        (kind[:-1], name, ", ".join(grants.sources.get((kind, name), ())))
        for kind in KINDS
        for name in sorted(getattr(grants, kind))
    ]


def consents_of(user: Any) -> QuerySet[Consent]:
    return Consent.objects.filter(user=user, revoked_at__isnull=True).select_related("client")


def refresh_tokens_of(user: Any) -> QuerySet[Any]:
    return get_refresh_token_model().objects.filter(user=user, revoked__isnull=True).select_related("application")


def auth_sessions_of(user: Any) -> QuerySet[AuthSession]:
    """The user's live login-tool sessions (as `mcp_endpoint.services.end_user_sessions` counts them)."""
    held = AuthSession.objects.filter(Q(user=user) | Q(callback_user=user), status__in=LIVE_SESSION)
    return held.select_related("application").order_by("-created_at")


@never_cache
def account(request: HttpRequest) -> HttpResponse:
    """The signed-in user's tools per application (and why), connected clients with revoke, and recent activity."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("accounts-login"))
    user = request.user
    context = {
        "applications": tools_of(user, request.tenant.slug),  # type: ignore[attr-defined]
        "grants": grant_sources(user),
        "consents": list(consents_of(user)),
        "refresh_tokens": list(refresh_tokens_of(user)),
        "auth_sessions": list(auth_sessions_of(user)),
        "activity": user_activity(user.pk),
    }
    return render(request, "accounts/account.html", context)


def _own(queryset: QuerySet[Any], pk: str, field: str = "pk") -> Any:
    """The user's own row of `queryset` (already narrowed to the user) whose `field` is `pk`, else 404, malformed ids
    included."""
    try:
        return queryset.get(**{field: pk})
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("Nothing of yours by that id.")


@require_POST
def revoke(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    """Revoke one of the user's own consents, refresh tokens or MCP login sessions, through the owning service."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("accounts-account"), reverse("accounts-login"))
    user = request.user
    if kind == "consent":
        consent = _own(consents_of(user), pk)
        oauth_services.revoke_consent(actor=user, consent=consent)
        messages.success(request, f"{consent.client.name} can no longer act for you; it will ask again.")
    elif kind == "token":
        token = _own(refresh_tokens_of(user), pk)
        oauth_services.revoke_tokens([token], actor=user)
        messages.success(request, f"The refresh token of {token.application.name} is revoked.")
    elif kind == "session":
        # Named by its `state` (a hash of its id): the id is the MCP client's bearer secret, kept out of pages and URLs.
        session = _own(auth_sessions_of(user), pk, "state")
        revoke_auth_sessions([session], actor=user)
        messages.success(request, f"The MCP session on {session.application.name} is logged out.")
    else:
        raise Http404("Unknown kind.")
    return redirect("accounts-account")
