"""The tenant dashboard's home (`/t/<tenant>/admin/`): what the tenant has, what waits for the admin, what went
wrong, and whether the services answer — each number a link to the filtered list that shows exactly those rows.

It reads many apps (rbac, oauth, approvals, services, workloads, audit), so it lives in the wiring above every layer;
the admin index renders it through the `tenant_home` template tag (`authsec_site.templatetags.tenant_home`).
Each card is there only for a viewer who may open the list behind it (deny by default). The page costs a fixed
handful of queries whatever the data's size (counts and aggregates, short lists cut at `SHOWN`), and the health
checks are bounded by short timeouts and never raise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from approvals.services import pending_count_for
from audit import queries as audit_queries
from audit.charts import Sparkline, build_sparkline
from audit.models import AuditEvent
from authsec_site.lib import health
from oauth.models import Client
from rbac.connect import urls_for
from rbac.models import Application, ToolPin, ToolPinSettings, ToolPolicy
from services.models import Service
from workloads.models import Workload, expired_q, expiring_q

SHOWN = 5  # rows listed in a card; the rest are one click away in the list behind its number
APPLICATIONS_SHOWN = 10
TOP_DENIED = 5
VAULT_TIMEOUT = 1.0  # seconds; Redis is bounded by its door's own short timeouts (`lib.redis.TIMEOUT`)
DRIFT_LABEL = {  # what a changed tool's pin means in each pinning mode (docs/pinning.md)
    ToolPinSettings.Mode.HOLD: " held until reviewed",
    ToolPinSettings.Mode.WARN: " served, flagged until reviewed",
}
AUTH_MODES = {
    Application.AuthMode.OAUTH_TOOLS: "login tools",
    Application.AuthMode.BEARER: "bearer token",
    Application.AuthMode.BOTH: "login tools or bearer token",
}


@dataclass(frozen=True)
class Number:
    """One counted number and the list that shows exactly the counted rows."""

    key: str  # stable name for tests and CSS (`data-count`)
    value: int
    label: str  # what it counts, written after the number ("users", "client registrations waiting …")
    url: str


@dataclass
class Home:
    """Everything the home's cards show; a card that is None (or empty) is not shown."""

    applications: list[dict[str, Any]] | None = None
    application_total: Number | None = None
    counts: list[Number] = field(default_factory=list)
    waiting: list[Number] = field(default_factory=list)
    pin_mode: str = ""
    denials: dict[str, Any] | None = None
    rotation: dict[str, Any] | None = None
    svids: list[Number] | None = None
    verification: dict[str, Any] | None = None
    health: list[dict[str, Any]] | None = None

    @property
    def has_cards(self) -> bool:
        return any(
            (
                self.applications is not None,
                self.counts,
                self.waiting,
                self.denials,
                self.rotation,
                self.svids is not None,
                self.verification,
                self.health,
            )
        )


def _admin_list(name: str, **filters: str) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def gather(request: HttpRequest) -> Home:
    """The home of the signed-in staff member `request.user`, in the current tenant's schema."""
    user = request.user
    home = Home()
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return home  # the admin index lets staff only in; nothing to show anyone else
    can = user.has_perm
    now = timezone.now()
    if can("rbac.view_application"):
        _applications(home)
    _counts(home, can)
    _waiting(home, user, can)
    if audit_queries.can_review(user):
        home.denials = _denials(now)
        home.verification = _verification()
    if can("services.view_service"):
        home.rotation = _rotation()
    if can("workloads.view_workload"):
        home.svids = _svids(now)
    if user.is_superuser:  # addresses and reasons of the platform's services: tenant admins only
        home.health = _health()
    return home


def _applications(home: Home) -> None:
    tenant_slug = connection.tenant.slug
    rows = list(Application.objects.order_by("slug")[:APPLICATIONS_SHOWN])
    total = Application.objects.count()
    home.applications = [
        {
            "slug": app.slug,
            "name": app.name,
            "is_active": app.is_active,
            "auth_mode": app.auth_mode,
            "auth_label": AUTH_MODES.get(app.auth_mode, app.auth_mode),
            "endpoint": urls_for(tenant_slug, app).endpoint,
            "change_url": reverse("admin:rbac_application_change", args=[app.pk]),
            "connect_url": reverse("admin:rbac_application_connect", args=[app.pk]),
        }
        for app in rows
    ]
    label = _plural(total, "application", "applications")
    home.application_total = Number("applications", total, label, _admin_list("rbac_application"))


def _counts(home: Home, can: Any) -> None:
    if can("accounts.view_user"):
        users = User.objects.count()
        home.counts.append(Number("users", users, _plural(users, "user", "users"), _admin_list("accounts_user")))
    if can("rbac.view_toolpolicy"):
        tools = ToolPolicy.objects.count()
        home.counts.append(Number("tools", tools, _plural(tools, "tool", "tools"), _admin_list("rbac_toolpolicy")))
    if can("oauth.view_client"):
        clients = Client.objects.count()
        label = _plural(clients, "OAuth client", "OAuth clients")
        home.counts.append(Number("clients", clients, label, _admin_list("oauth_client")))


def _waiting(home: Home, user: Any, can: Any) -> None:
    if can("oauth.view_client") or can("oauth.change_client"):
        pending = Client.objects.filter(status=Client.Status.PENDING).count()
        label = _plural(pending, "client registration waits", "client registrations wait") + " for approval"
        home.waiting.append(
            Number("pending_clients", pending, label, _admin_list("oauth_client", status__exact="pending"))
        )
    approvals = pending_count_for(user)
    label = _plural(approvals, "approval request waits", "approval requests wait") + " for your answer"
    home.waiting.append(Number("pending_approvals", approvals, label, reverse("approvals:list")))
    if can("rbac.view_toolpin"):
        home.pin_mode = ToolPinSettings.current_mode()
        drifted = ToolPin.objects.in_state(ToolPin.State.DRIFTED).count()
        label = _plural(drifted, "changed tool", "changed tools") + DRIFT_LABEL.get(home.pin_mode, " wait for review")
        home.waiting.append(Number("drifted_tools", drifted, label, _admin_list("rbac_toolpin", state="drifted")))
        rejected = ToolPin.objects.in_state(ToolPin.State.REJECTED).count()
        label = _plural(rejected, "tool", "tools") + " held on a rejected change"
        if home.pin_mode != ToolPinSettings.Mode.OFF:
            home.waiting.append(
                Number("rejected_tools", rejected, label, _admin_list("rbac_toolpin", state="rejected"))
            )


def _denials(now: dt.datetime) -> dict[str, Any]:
    """Denied events per hour over the last 24 hours (this hour included) and the most denied tools."""
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=23)
    window = audit_queries.ChartWindow(start, now, "hour")
    filters = {"outcome": AuditEvent.Outcome.DENY}
    spark: Sparkline = build_sparkline(window, audit_queries.outcome_counts(filters, window))
    since = start.strftime("%Y-%m-%dT%H:%M")
    top = audit_queries.top_denied_tools(filters, window, limit=TOP_DENIED)
    tools = [
        Number(
            f"denied:{row['application'] or ''}/{row['tool']}",
            row["n"],
            f"{row['tool']} ({row['application']})" if row["application"] else row["tool"],
            audit_queries.filtered_list_url(
                outcome="deny",
                start=since,
                **({"application": row["application"]} if row["application"] else {}),
                tool=row["tool"],
            ),
        )
        for row in top
    ]
    total = Number(
        "denials", spark.total, _plural(spark.total, "denial", "denials") + " in the last 24 hours",
        audit_queries.filtered_list_url(outcome="deny", start=since),
    )  # fmt: skip
    return {"spark": spark, "total": total, "tools": tools, "since": start}


def _verification() -> dict[str, Any]:
    event = audit_queries.last_verification()
    if event is None:
        return {"never": True}
    return {
        "never": False,
        "ok": event.outcome == AuditEvent.Outcome.SUCCESS,
        "at": event.created_at,
        "checked": event.data.get("checked"),
        "last_seq": event.data.get("last_seq"),
        "problems": event.data.get("problems") or [],
        "url": reverse("audit:event-detail", args=[event.pk]),
    }


def _rotation() -> dict[str, Any]:
    failed = Service.objects.filter(status=Service.Status.ROTATION_FAILED)
    rows = list(failed.order_by("name").values("pk", "name", "last_rotation_error", "rotation_failures")[:SHOWN])
    count = failed.count()
    label = _plural(count, "service whose last rotation failed", "services whose last rotation failed")
    number = Number(
        "rotation_failed", count, label, _admin_list("services_service", status__exact=Service.Status.ROTATION_FAILED)
    )
    shown = [{**row, "url": reverse("admin:services_service_change", args=[row["pk"]])} for row in rows]
    return {"number": number, "services": shown}


def _svids(now: dt.datetime) -> list[Number]:
    counts = Workload.objects.aggregate(
        soon=Count("pk", filter=expiring_q(now)), expired=Count("pk", filter=expired_q(now))
    )
    url = _admin_list("workloads_workload")
    return [
        Number(
            "svids_expiring", counts["soon"], _plural(counts["soon"], "SVID expires", "SVIDs expire") + " within a day",
            f"{url}?svid_expiry=day",
        ),
        Number(
            "svids_expired", counts["expired"], _plural(counts["expired"], "SVID has", "SVIDs have") + " expired",
            f"{url}?svid_expiry=expired",
        ),
    ]  # fmt: skip


def _health() -> list[dict[str, Any]]:
    """Postgres, Redis and Vault: "ok" or the reason, each bounded by a short timeout; never raises."""
    checks = (
        ("postgres", "Postgres", health.check_database()),
        ("redis", "Redis", health.ping_redis()),
        ("vault", "Vault", health.check_vault(timeout=VAULT_TIMEOUT)),
    )
    return [
        {
            "key": key,
            "name": name,
            "ok": status == "ok",
            "reason": "" if status == "ok" else status.removeprefix("error: "),
        }
        for key, name, status in checks
    ]
