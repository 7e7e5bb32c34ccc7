"""The dashboard's "Tokens & sessions" page (/t/<tenant>/admin/tokens/): every live access token, refresh token and MCP
login session of the tenant in one searchable, paginated list, each revocable after a confirmation.

It spans `oauth` (DOT's tokens) and `mcp_endpoint` (login sessions), so it lives in the wiring above every app. Revokes
go through the owning apps' audited services (`oauth.services.revoke_tokens`, `mcp_endpoint.services.
revoke_auth_sessions`) with the admin as the actor. Token values are never read into the page: rows carry ids and,
for access tokens, a prefix of the stored SHA-256 checksum; a session is named by its `state` (a hash of its id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import CharField, DateTimeField, F, Model, Q, QuerySet, Value
from django.db.models.functions import Cast, Substr
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from mcp_endpoint.models import AuthSession
from mcp_endpoint.services import revoke_auth_sessions
from oauth import services as oauth_services

PAGE_SIZE = 50
LIVE_SESSION = (AuthSession.Status.PENDING, AuthSession.Status.AUTHENTICATED)


@dataclass(frozen=True)
class Kind:
    """One kind of row: who may see it, who may revoke it, and how to find the live ones."""

    slug: str
    label: str
    view_permission: str
    revoke_permission: str  # the permission the dashboard's revoke action needed before this page

    def model(self) -> type[Model]:
        if self.slug == "access":
            return get_access_token_model()
        if self.slug == "refresh":
            return get_refresh_token_model()
        return AuthSession

    def live(self) -> QuerySet[Any]:
        now = timezone.now()
        if self.slug == "access":
            return get_access_token_model().objects.filter(expires__gt=now)
        if self.slug == "refresh":
            return get_refresh_token_model().objects.filter(revoked__isnull=True)
        return AuthSession.objects.filter(status__in=LIVE_SESSION, expires_at__gt=now)


KINDS = {
    kind.slug: kind
    for kind in (
        Kind("access", "Access token", "oauth2_provider.view_accesstoken", "oauth2_provider.change_accesstoken"),
        Kind("refresh", "Refresh token", "oauth2_provider.view_refreshtoken", "oauth2_provider.change_refreshtoken"),
        Kind("session", "MCP login session", "mcp_endpoint.view_authsession", "mcp_endpoint.delete_authsession"),
    )
}


def _rows(kind: Kind, query: str) -> QuerySet[Any]:
    """`kind`'s live rows as the page's common columns (the same names, in the same order, for the union)."""
    rows = kind.live()
    if kind.slug == "session":
        if query:
            rows = rows.filter(
                Q(user__email__icontains=query)
                | Q(application__name__icontains=query)
                | Q(application__slug__icontains=query)
            )
        client_id, ref, detail, expires = F("application__slug"), Substr("state", 1, 12), F("status"), F("expires_at")
        created = F("created_at")
    else:
        if query:
            rows = rows.filter(
                Q(user__email__icontains=query)
                | Q(application__name__icontains=query)
                | Q(application__client_id__icontains=query)
            )
        client_id, created = F("application__client_id"), F("created")
        if kind.slug == "access":
            ref, detail, expires = Substr("token_checksum", 1, 12), F("scope"), F("expires")
        else:
            ref, detail, expires = Value(""), Value(""), Value(None, output_field=DateTimeField())
    return rows.order_by().annotate(
        row_kind=Value(kind.slug, output_field=CharField()),
        row_id=Cast("state" if kind.slug == "session" else "pk", CharField()),
        row_ref=Cast(ref, CharField()),
        row_user=F("user__email"),
        row_client=F("application__name"),
        row_client_id=Cast(client_id, CharField()),
        row_detail=Cast(detail, CharField()),
        row_created=created,
        row_expires=expires,
    ).values(
        "row_kind", "row_id", "row_ref", "row_user", "row_client", "row_client_id", "row_detail", "row_created",
        "row_expires",
    )  # fmt: skip


def _visible(request: HttpRequest) -> list[Kind]:
    return [kind for kind in KINDS.values() if request.user.has_perm(kind.view_permission)]


def tokens(request: HttpRequest) -> HttpResponse:
    """The list: `q` searches user email, client name and client id (application slug for sessions); `kind` keeps one
    kind; 50 rows a page, newest first. Staff see only the kinds they may view; none → 403."""
    visible = _visible(request)
    if not visible:
        raise PermissionDenied
    query = request.GET.get("q", "").strip()[:200]
    chosen = request.GET.get("kind", "")
    if chosen and chosen not in KINDS:
        return HttpResponseBadRequest(
            "Unknown kind: choose access, refresh or session.", content_type="text/plain; charset=utf-8"
        )
    kinds = [KINDS[chosen]] if chosen else visible
    if any(kind not in visible for kind in kinds):
        raise PermissionDenied
    first, *others = [_rows(kind, query) for kind in kinds]
    rows = (first.union(*others, all=True) if others else first).order_by("-row_created", "row_kind", "row_id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    revocable = {kind.slug for kind in visible if request.user.has_perm(kind.revoke_permission)}
    for row in page.object_list:
        row["label"] = KINDS[row["row_kind"]].label
        row["may_revoke"] = row["row_kind"] in revocable
    context = {
        **admin.site.each_context(request),
        "title": "Tokens & sessions",
        "subtitle": None,
        "page": page,
        "query": query,
        "kind": chosen,
        "kinds": visible,
        "anything_live": bool(query or chosen) or page.paginator.count > 0,
    }
    return TemplateResponse(request, "admin/tokens/list.html", context)


def _live_row(kind: Kind, pk: str) -> Any:
    """A live row by its page id: a token's pk, a session's `state` (a hash of its id: the id is a bearer secret)."""
    lookup = {"state": pk} if kind.slug == "session" else {"pk": pk}
    try:
        return kind.live().select_related("application", "user").get(**lookup)
    except (kind.model().DoesNotExist, ValueError, TypeError):
        raise Http404("No live token or session by that id.")


def revoke(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    """GET: ask to confirm; POST (Django's CSRF token): revoke through the owning app's service. Only staff with the
    kind's revoke permission; a row that is not live (or not there) is 404."""
    if kind not in KINDS:
        raise Http404("Unknown kind.")
    chosen = KINDS[kind]
    if not (request.user.has_perm(chosen.view_permission) and request.user.has_perm(chosen.revoke_permission)):
        raise PermissionDenied
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    row = _live_row(chosen, pk)
    if request.method == "POST":
        if chosen.slug == "session":
            revoke_auth_sessions([row], actor=request.user)
            messages.success(request, f"The MCP login session on {row.application.name} is logged out.")
        else:
            oauth_services.revoke_tokens([row], actor=request.user)
            whom = row.user.email if row.user_id else "no user"
            messages.success(request, f"The {chosen.label.lower()} #{row.pk} ({whom}) is revoked.")
        return redirect("dashboard-tokens")
    context = {
        **admin.site.each_context(request),
        "title": f"Revoke this {chosen.label.lower()}?",
        "subtitle": None,
        "kind": chosen,
        "row": row,
        "ref": (row.state[:12] if chosen.slug == "session" else getattr(row, "token_checksum", "")[:12]),
    }
    return TemplateResponse(request, "admin/tokens/confirm.html", context)
