"""The review pages at /t/<tenant>/audit/: who may see them, filters, keyset pages, detail, exports, links."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

import audit
from accounts.models import User
from accounts.roles import DashboardRole
from audit import chain
from audit.models import AuditEvent
from audit.recorder import Actor
from rbac.demo import seed_rbac
from rbac.models import Role, ToolPolicy
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import log_in

pytestmark = pytest.mark.django_db

LIST = "/t/acme/audit/"


def tool_call(actor: str, tool: str, outcome: str, application: str = "review-demo", reason: str = "") -> AuditEvent:
    """A decision event as the MCP endpoint will write it (the contract in docs/audit.md)."""
    return audit.record(
        Actor("user", "", actor),
        "mcp.tool_call",
        outcome=outcome,
        data={"application": application, "tool": tool, "reason": reason or f"{outcome} by policy"},
    )


@pytest.fixture
def decisions(acme: Tenant) -> dict[str, AuditEvent]:
    with schema_context(acme.schema_name):
        return {
            "bob_deny": tool_call("bob.review@acme.test", "review_deploy", "deny", reason="needs role deployer"),
            "bob_allow": tool_call("bob.review@acme.test", "review_hello", "allow"),
            "alice_deny": tool_call("alice.review@acme.test", "review_deploy", "deny"),
            "carol_other_app": tool_call("carol.review@acme.test", "review_deploy", "deny", application="review-ops"),
            "rbac": audit.record(
                "tests", "rbac.role_granted", data={"role": "review-analyst", "user": "bob.review@acme.test"}
            ),
        }


def rows(response) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(action, outcome, actor) of each listed event, newest first."""
    return [(e.action, e.outcome, e.actor_label) for e in response.context["page"].events]


# --- who may see the pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "events/{id}/", "export.csv", "export.jsonl"])
def test_anonymous_visitors_are_sent_to_the_login(acme: Tenant, decisions: dict[str, AuditEvent], path: str) -> None:
    url = LIST + path.format(id=decisions["bob_deny"].pk)
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/t/acme/admin/login/?next=")


@pytest.mark.parametrize("path", ["", "events/{id}/", "export.csv", "export.jsonl"])
def test_staff_without_the_auditor_permission_get_403(
    staff_client: Client, decisions: dict[str, AuditEvent], path: str
) -> None:
    assert staff_client.get(LIST + path.format(id=decisions["bob_deny"].pk)).status_code == 403


def test_a_user_who_is_not_staff_gets_403_even_with_the_permission(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="not-staff@acme.test", is_staff=False, dashboard_roles=[DashboardRole.AUDITOR])
        client = Client()
        client.force_login(user)
    assert client.get(LIST).status_code == 403


@pytest.mark.parametrize("path", ["", "events/{id}/", "export.csv", "export.jsonl"])
def test_auditors_and_tenant_admins_can_read(
    auditor_client: Client, admin_client: Client, decisions: dict[str, AuditEvent], path: str
) -> None:
    url = LIST + path.format(id=decisions["bob_deny"].pk)
    assert auditor_client.get(url).status_code == 200
    assert admin_client.get(url).status_code == 200


def test_an_acme_auditor_is_not_logged_in_at_globex(auditor_client: Client, globex: Tenant) -> None:
    response = auditor_client.get("/t/globex/audit/")
    assert response.status_code == 302
    assert response["Location"].startswith("/t/globex/admin/login/")


def test_each_tenant_lists_only_its_own_events(auditor_client: Client, globex: Tenant, acme: Tenant) -> None:
    with schema_context(globex.schema_name):
        tool_call("erin@globex.test", "secret_globex_tool", "deny")
        globex_event = AuditEvent.objects.get(tool="secret_globex_tool")
    response = auditor_client.get(LIST, {"tool": "secret_globex_tool"})
    assert response.status_code == 200 and rows(response) == []
    # An id from another schema is not found in this one (or is a different event).
    detail = auditor_client.get(f"{LIST}events/{globex_event.pk}/")
    assert detail.status_code == 404 or "secret_globex_tool" not in detail.content.decode()


def test_the_auditor_role_reads_the_log_and_nothing_else(auditor: User, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        granted = User.objects.get(pk=auditor.pk).get_all_permissions()
        assert granted == {
            "audit.review_auditevent",
            "audit.view_auditevent",
            "audit.view_auditcheckpoint",
            "audit.view_auditsettings",
            "audit.view_auditsink",
        }
        assert not any(perm.startswith("rbac.") for perm in granted)


def test_auditors_get_403_on_rbac_edit_pages(auditor_client: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        seed_rbac("acme")
        role = Role.objects.get(name="developer")
        policy = ToolPolicy.objects.get(tool_name="deploy_production")
        bob = UserFactory(email="bob.rbac@acme.test")
    for url in (
        "/t/acme/admin/rbac/role/add/",
        f"/t/acme/admin/rbac/role/{role.pk}/change/",
        f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/",
        "/t/acme/admin/rbac/toolpolicy/",
        f"/t/acme/admin/accounts/user/{bob.pk}/effective/",
    ):
        assert auditor_client.get(url).status_code == 403, url
    response = auditor_client.post(f"/t/acme/admin/rbac/role/{role.pk}/change/", {"name": "renamed"})
    assert response.status_code == 403
    response = auditor_client.post(f"/t/acme/admin/rbac/role/{role.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    api = auditor_client.post("/t/acme/api/roles/", {"name": "sneaky"}, content_type="application/json")
    assert api.status_code == 403
    with schema_context(acme.schema_name):
        assert Role.objects.filter(name="developer").exists() and not Role.objects.filter(name="sneaky").exists()


# --- filters ------------------------------------------------------------------------------------------------------


def test_filters_by_actor_any_case_and_outcome(auditor_client: Client, decisions: dict[str, AuditEvent]) -> None:
    response = auditor_client.get(LIST, {"actor": "BOB.Review@acme.test", "outcome": "deny"})
    assert rows(response) == [("mcp.tool_call", "deny", "bob.review@acme.test")]
    response = auditor_client.get(LIST, {"actor": "bob.review@acme.test"})
    assert rows(response) == [
        ("mcp.tool_call", "allow", "bob.review@acme.test"),
        ("mcp.tool_call", "deny", "bob.review@acme.test"),
    ]


def test_filters_by_application_tool_category_and_text(
    auditor_client: Client, decisions: dict[str, AuditEvent]
) -> None:
    by_tool = auditor_client.get(LIST, {"application": "review-demo", "tool": "review_deploy"})
    assert {actor for _, _, actor in rows(by_tool)} == {"bob.review@acme.test", "alice.review@acme.test"}
    by_category = auditor_client.get(LIST, {"category": "rbac", "q": "review-analyst"})
    assert rows(by_category) == [("rbac.role_granted", "success", "tests")]
    by_text = auditor_client.get(LIST, {"q": "NEEDS ROLE deployer"})
    assert [e.pk for e in by_text.context["page"].events] == [decisions["bob_deny"].pk]


def test_free_text_searches_the_last_week_unless_a_start_is_given(
    auditor_client: Client, decisions: dict[str, AuditEvent]
) -> None:
    response = auditor_client.get(LIST, {"q": "needs role deployer"})
    assert [e.pk for e in response.context["page"].events] == [decisions["bob_deny"].pk]
    assert "Text search covers the last 7 days" in response.content.decode()
    window = response.context["window"]
    assert dt.timedelta(days=6, hours=23) < window.end - window.start < dt.timedelta(days=7, minutes=1)
    explicit = auditor_client.get(LIST, {"q": "needs role deployer", "start": "2020-01-01"})
    assert "Text search covers" not in explicit.content.decode()
    assert [e.pk for e in explicit.context["page"].events] == [decisions["bob_deny"].pk]


def test_filters_by_time_range(auditor_client: Client, decisions: dict[str, AuditEvent], acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        later = tool_call("dave.review@acme.test", "late_tool", "allow")
    boundary = later.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert rows(auditor_client.get(LIST, {"start": boundary, "actor": "dave.review@acme.test"})) == [
        ("mcp.tool_call", "allow", "dave.review@acme.test")
    ]
    assert rows(auditor_client.get(LIST, {"end": boundary, "actor": "dave.review@acme.test"})) == []
    today = later.created_at.date().isoformat()
    assert len(rows(auditor_client.get(LIST, {"start": today, "end": today, "actor": "dave.review@acme.test"}))) == 1
    tomorrow = (later.created_at.date() + dt.timedelta(days=1)).isoformat()
    assert rows(auditor_client.get(LIST, {"start": tomorrow})) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "“yesterday” is not a date or time"),
        ({"end": "2026-13-45"}, "“2026-13-45” is not a date or time"),
        ({"start": "2026-05-02", "end": "2026-05-01"}, "“Until” must be later than “From”"),
        ({"outcome": "maybe"}, "Select a valid choice"),
        ({"category": "RBAC.x"}, "lower-case first part"),
        ({"before": "not-a-cursor"}, "This page link is not valid"),
    ],
)
def test_bad_parameters_get_a_clear_message_not_an_error(
    auditor_client: Client, params: dict[str, str], message: str
) -> None:
    response = auditor_client.get(LIST, params)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert "These filters cannot be used" in body
    export = auditor_client.get(LIST + "export.csv", params)
    assert export.status_code == 400


# --- keyset pagination --------------------------------------------------------------------------------------------


def test_pages_follow_keyset_cursors_without_offset(auditor_client: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        made = [audit.record("tests", "pagetest.step", data={"n": n}) for n in range(120)]
    newest_first = [event.pk for event in reversed(made)]
    with CaptureQueriesContext(connection) as queries:
        first = auditor_client.get(LIST, {"category": "pagetest"})
    assert not any("OFFSET" in query["sql"].upper() for query in queries.captured_queries)
    assert [e.pk for e in first.context["page"].events] == newest_first[:50]
    assert first.context["newer_qs"] is None and first.context["older_qs"]
    second = auditor_client.get(LIST + "?" + first.context["older_qs"])
    assert [e.pk for e in second.context["page"].events] == newest_first[50:100]
    third = auditor_client.get(LIST + "?" + second.context["older_qs"])
    assert [e.pk for e in third.context["page"].events] == newest_first[100:]
    assert third.context["older_qs"] is None
    back = auditor_client.get(LIST + "?" + third.context["newer_qs"])
    assert [e.pk for e in back.context["page"].events] == newest_first[50:100]
    assert "category=pagetest" in third.context["newer_qs"]
    newest = auditor_client.get(LIST + "?" + back.context["newer_qs"])
    assert [e.pk for e in newest.context["page"].events] == newest_first[:50]
    assert newest.context["newer_qs"] is None


# --- detail -------------------------------------------------------------------------------------------------------


def test_detail_shows_data_chain_position_hash_and_verification(
    auditor_client: Client, decisions: dict[str, AuditEvent]
) -> None:
    event = decisions["bob_deny"]
    response = auditor_client.get(f"{LIST}events/{event.pk}/", {"actor": "bob.review@acme.test"})
    body = response.content.decode()
    assert response.context["status"].ok
    assert f'<td id="chain-position">{event.seq}</td>' in body
    assert event.hash in body and event.prev_hash in body
    assert "needs role deployer" in body and "Verified" in body
    assert 'href="/t/acme/audit/?actor=bob.review%40acme.test"' in body


def test_detail_shows_a_tampered_event_as_broken(auditor_client: Client, decisions: dict[str, AuditEvent]) -> None:
    event = decisions["bob_allow"]
    with schema_context("tenant_acme"), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET outcome = 'deny' WHERE id = %s", [event.pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    response = auditor_client.get(f"{LIST}events/{event.pk}/")
    assert not response.context["status"].ok
    assert "Chain broken here" in response.content.decode()


def test_unknown_event_is_404(auditor_client: Client) -> None:
    assert auditor_client.get(f"{LIST}events/987654321/").status_code == 404


# --- chart and top denied tools -------------------------------------------------------------------------------------


def test_chart_and_top_denied_tools_reflect_the_filters(
    auditor_client: Client, decisions: dict[str, AuditEvent]
) -> None:
    response = auditor_client.get(LIST, {"application": "review-demo"})
    body = response.content.decode()
    assert '<svg id="audit-chart-svg"' in body
    chart = response.context["chart"]
    assert {rect.outcome: rect.count for rect in chart.rects} == {"deny": 2, "allow": 1}
    assert chart.bar_kind == "day" and chart.total == 3
    top = response.context["top_denied"]
    assert [(row["application"], row["tool"], row["n"]) for row in top] == [("review-demo", "review_deploy", 2)]
    assert "outcome=deny" in top[0]["qs"] and "tool=review_deploy" in top[0]["qs"]
    hourly = auditor_client.get(
        LIST, {"start": dt.date.today().isoformat(), "end": dt.date.today().isoformat(), "tool": "review_hello"}
    )
    assert hourly.context["chart"].bar_kind == "hour" and hourly.context["chart"].total == 1


# --- exports ------------------------------------------------------------------------------------------------------


def _body(response) -> str:  # type: ignore[no-untyped-def]
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_csv_export_holds_every_filtered_event(
    auditor_client: Client, decisions: dict[str, AuditEvent], acme: Tenant
) -> None:
    with schema_context(acme.schema_name):
        tool_call("=HYPERLINK(evil)", "review_deploy", "deny")
    response = auditor_client.get(LIST + "export.csv", {"tool": "review_deploy", "outcome": "deny"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    records = list(csv.DictReader(io.StringIO(_body(response))))
    assert [(r["actor_label"], r["application"], r["outcome"]) for r in records] == [
        ("bob.review@acme.test", "review-demo", "deny"),
        ("alice.review@acme.test", "review-demo", "deny"),
        ("carol.review@acme.test", "review-ops", "deny"),
        ("'=HYPERLINK(evil)", "review-demo", "deny"),  # never a spreadsheet formula
    ]
    first = records[0]
    assert json.loads(first["data"])["reason"] == "needs role deployer"
    assert (first["seq"], first["hash"]) == (str(decisions["bob_deny"].seq), decisions["bob_deny"].hash)


def test_jsonl_export_lines_verify_against_their_hashes(
    auditor_client: Client, decisions: dict[str, AuditEvent], acme: Tenant
) -> None:
    response = auditor_client.get(LIST + "export.jsonl", {"actor": "bob.review@acme.test"})
    lines = [json.loads(line) for line in _body(response).splitlines()]
    assert [(line["tool"], line["outcome"]) for line in lines] == [("review_deploy", "deny"), ("review_hello", "allow")]
    for line in lines:
        fields = {**line, "created_at": dt.datetime.fromisoformat(line["created_at"])}
        assert chain.compute_hash(fields) == line["hash"]
    with schema_context(acme.schema_name):
        exported = AuditEvent.objects.filter(action="audit.exported").latest("seq")
    assert exported.actor_label == "auditor@acme.test"
    assert exported.data == {"format": "jsonl", "filters": {"actor": "bob.review@acme.test"}}


def test_unknown_export_format_is_404(auditor_client: Client) -> None:
    assert auditor_client.get(LIST + "export.xml").status_code == 404


# --- links from the dashboard ---------------------------------------------------------------------------------------


def test_users_and_tools_link_to_their_filtered_audit_view(admin_client: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        seed_rbac("acme")
        bob = UserFactory(email="bob.links@acme.test")
        policy = ToolPolicy.objects.get(tool_name="deploy_production")
    by_user = '/t/acme/audit/?actor=bob.links%40acme.test"'
    assert by_user in admin_client.get("/t/acme/admin/accounts/user/").content.decode()
    assert by_user in admin_client.get(f"/t/acme/admin/accounts/user/{bob.pk}/change/").content.decode()
    assert by_user in admin_client.get(f"/t/acme/admin/accounts/user/{bob.pk}/effective/").content.decode()
    by_tool = '/t/acme/audit/?application=demo&amp;tool=deploy_production"'
    assert by_tool in admin_client.get("/t/acme/admin/rbac/toolpolicy/").content.decode()
    assert by_tool in admin_client.get(f"/t/acme/admin/rbac/toolpolicy/{policy.pk}/change/").content.decode()
    assert 'class="reviewlink"' in admin_client.get("/t/acme/admin/audit/auditevent/").content.decode()


def test_no_audit_links_for_staff_who_cannot_review(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        from django.contrib.auth.models import Permission

        user = UserFactory(email="user-admin@acme.test", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client = log_in(acme, user.email)
    assert "auditlink" not in client.get("/t/acme/admin/accounts/user/").content.decode()
    assert "auditlink" not in client.get(f"/t/acme/admin/accounts/user/{user.pk}/change/").content.decode()


def test_retention_is_edited_in_the_dashboard_and_audited(admin_client: Client, acme: Tenant) -> None:
    listing = admin_client.get("/t/acme/admin/audit/auditsettings/")
    assert listing.status_code == 302
    change_url = listing["Location"]
    response = admin_client.post(change_url, {"retention_days": "90"})
    assert response.status_code == 302, response.content.decode()[:2000]
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="audit.settings_changed").latest("seq")
        assert event.data["changes"] == {"retention_days": {"before": 365, "after": 90}}
        assert event.actor_label == "admin@acme.test"
    assert "90 days" in admin_client.get(LIST).content.decode()
