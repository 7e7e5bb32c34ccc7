"""The tenant dashboard's home (/t/<tenant>/admin/): each card's numbers, each number's link landing on a list that
shows exactly the counted rows, a fixed number of queries whatever the data's size, the health card when Vault or
Redis is down, and the audit chain's last verification as `verify_audit` records it."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import socket
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

import audit
from accounts.models import User
from approvals import services as approvals
from audit.filters import PAGE_SIZE
from audit.models import AuditEvent
from authsec_site.lib.vault.client import forget_platform_client
from oauth.models import Client as OAuthClient
from rbac.models import ToolPin
from services.models import Service
from tenants.models import Tenant
from tests.factories import ApplicationFactory, OAuthClientFactory, ToolPolicyFactory, UserFactory
from tests.support.services import make_service
from workloads.models import Workload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

HOME = "/t/acme/admin/"
NUMBER = re.compile(r'<a class="num-link" href="([^"]+)" data-count="([^"]+)"><span class="num">(\d+)</span>')


def numbers(page: str) -> dict[str, tuple[int, str]]:
    """{key: (value, url)} of every number on the home."""
    return {key: (int(value), html.unescape(url)) for url, key, value in NUMBER.findall(page)}


OLDER = re.compile(r'<a href="\?([^"]+)" id="page-older"')


def landed_rows(admin: Client, url: str) -> int:
    """How many rows the list behind `url` holds: an admin changelist's, the audit list's (every keyset page, following
    "Older" until there is none) or the approvals queue's."""
    response = admin.get(url)
    assert response.status_code == 200, url
    page = response.content.decode()
    if 'id="audit-events"' in page:
        older = OLDER.search(page)
        rest = landed_rows(admin, f"{url.split('?')[0]}?{html.unescape(older.group(1))}") if older else 0
        return page.count("data-event-id=") + rest
    if 'class="approvals"' in page or 'id="no-pending"' in page:
        return page.count("data-approval=")
    table = re.search(r'<table id="result_list">.*?<tbody>(.*?)</tbody>', page, re.S)
    return 0 if table is None else table.group(1).count("<tr")


def make_pin(state: str) -> ToolPin:
    policy = ToolPolicyFactory()
    seen = "a" * 64 if state == "pinned" else "b" * 64
    return ToolPin.objects.create(
        policy=policy,
        tool_name=policy.tool_name,
        source=ToolPin.Source.HOSTED,
        pinned_hash="a" * 64,
        seen_hash=seen,
        rejected_hash=seen if state == "rejected" else "",
    )


def make_workload(name: str, expires_in: dt.timedelta, enabled: bool = True) -> Workload:
    now = timezone.now()
    return Workload.objects.create(
        name=name,
        spiffe_path=f"/home/{name}",
        is_enabled=enabled,
        svid_serial=name,
        svid_not_before=now - dt.timedelta(hours=1),
        svid_not_after=now + expires_in,
    )


def make_data(n: int) -> str:
    """`n` of each thing a card counts, in the current schema (acme), plus rows the cards must not count; returns
    the slug of the application whose tools t0 and t1 got the denials."""
    admin = User.objects.get(email="admin@acme.test")
    app = ApplicationFactory()
    for i in range(n):
        UserFactory()
        OAuthClientFactory(status=OAuthClient.Status.PENDING)
        approvals.request_approval(caller=admin, mode="self", application=app, tool_name=f"t{i}", arguments={"i": i})
        make_pin("drifted")
        make_pin("rejected")
        service = make_service()
        Service.objects.filter(pk=service.pk).update(
            status=Service.Status.ROTATION_FAILED, last_rotation_error="the provider said 401"
        )
        make_workload(f"soon-{n}-{i}", dt.timedelta(hours=3))
        make_workload(f"gone-{n}-{i}", -dt.timedelta(hours=3))
        audit.record("tests", "mcp.tool_call", outcome="deny", data={"application": app.slug, "tool": f"t{i % 2}"})
    # Not counted: an active client, a pinned tool, a later SVID, a disabled workload, a working service.
    OAuthClientFactory()
    make_pin("pinned")
    make_workload(f"later-{n}", dt.timedelta(days=3))
    make_workload(f"off-{n}", dt.timedelta(hours=3), enabled=False)
    make_service()
    return app.slug


def test_each_number_links_to_a_list_of_exactly_its_rows(acme: Tenant, admin: Client) -> None:
    before = numbers(admin.get(HOME).content.decode())
    with schema_context(acme.schema_name):
        slug = make_data(3)
        users = User.objects.count()
    page = admin.get(HOME).content.decode()
    found = numbers(page)
    assert found["users"][0] == users
    for key in (
        "pending_clients",
        "pending_approvals",
        "drifted_tools",
        "rejected_tools",
        "rotation_failed",
        "svids_expiring",
        "svids_expired",
    ):
        assert found[key][0] == 3, key
    assert found["denials"][0] == before["denials"][0] + 3
    # "Most denied" is a top 5, and live-server tests may have committed denials of other tools. Give t0 and t1 as
    # many more denials as the 4th of the earlier top 5 had: at most 3 tools can then be above them.
    earlier = sorted((value for key, (value, _) in before.items() if key.startswith("denied:")), reverse=True)
    extra = earlier[3] if len(earlier) > 3 else 0
    with schema_context(acme.schema_name):
        for tool in ("t0", "t1"):
            for _ in range(extra):
                audit.record("tests", "mcp.tool_call", outcome="deny", data={"application": slug, "tool": tool})
    found = numbers(admin.get(HOME).content.decode())
    assert (found[f"denied:{slug}/t0"][0], found[f"denied:{slug}/t1"][0]) == (extra + 2, extra + 1)
    assert found["applications"][0] >= 1 and found["tools"][0] >= 6 and found["clients"][0] >= 4
    # The audit list shows PAGE_SIZE events a page: enough more denials that the denials link spans pages.
    with schema_context(acme.schema_name):
        for _ in range(PAGE_SIZE):
            audit.record("tests", "mcp.tool_call", outcome="deny", data={"application": slug, "tool": "paged"})
    found = numbers(admin.get(HOME).content.decode())
    assert found["denials"][0] > PAGE_SIZE
    for key, (value, url) in found.items():
        assert landed_rows(admin, url) == value, (key, url)
    # The applications card lists each application with its endpoint and auth mode.
    assert "http://testserver/t/acme/mcp/" in page or "/t/acme/mcp/" in page
    assert "the provider said 401" in page


def test_the_page_costs_the_same_queries_whatever_the_data(acme: Tenant, admin: Client) -> None:
    admin.get(HOME)  # warm the caches a first request fills
    with schema_context(acme.schema_name):
        make_data(1)
    with CaptureQueriesContext(connection) as small:
        assert admin.get(HOME).status_code == 200
    with schema_context(acme.schema_name):
        make_data(12)
    with CaptureQueriesContext(connection) as large:
        assert admin.get(HOME).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)
    assert len(large.captured_queries) <= 40


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung service)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_vault_and_redis_down_show_red_with_the_reason(admin: Client, silent_port: int) -> None:
    healthy = admin.get(HOME).content.decode()
    assert re.findall(r'data-service="(\w+)" data-ok="(\w+)"', healthy) == [
        ("postgres", "true"),
        ("redis", "true"),
        ("vault", "true"),
    ]
    forget_platform_client()
    try:
        with override_settings(VAULT_ADDR=f"http://127.0.0.1:{silent_port}", REDIS_URL="redis://127.0.0.1:9/0"):
            started = timezone.now()
            response = admin.get(HOME)
            took = (timezone.now() - started).total_seconds()
    finally:
        forget_platform_client()
    assert response.status_code == 200
    page = response.content.decode()
    states = dict(re.findall(r'data-service="(\w+)" data-ok="(\w+)"', page))
    assert states == {"postgres": "true", "redis": "false", "vault": "false"}
    assert f"Vault at http://127.0.0.1:{silent_port} did not answer within 1.0s" in page
    assert "ConnectionError" in page  # Redis: refused at once
    assert took < 4.5  # Vault's 1 s, Redis's refusal: the page does not wait for VAULT_TIMEOUT


def test_the_last_verification_is_recorded_by_verify_audit(acme: Tenant, admin: Client) -> None:
    page = admin.get(HOME).content.decode()
    with schema_context(acme.schema_name):
        verified = AuditEvent.objects.filter(action="audit.chain_verified").exists()
    if not verified:
        assert "Never verified." in page
    call_command("verify_audit", "acme", stdout=io.StringIO(), stderr=io.StringIO())
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="audit.chain_verified").order_by("-seq").first()
    assert event is not None and event.outcome == "success" and event.actor_label == "audit-verify"
    assert event.data["last_seq"] == event.seq - 1  # everything before it was checked
    page = admin.get(HOME).content.decode()
    assert "✓ Held" in page and f'href="/t/acme/audit/events/{event.pk}/"' in page
    assert "Never verified." not in page
