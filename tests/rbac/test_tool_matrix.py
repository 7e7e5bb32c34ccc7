"""The user × tool matrix (`rbac.matrix`): every cell is the engine's decision for that user's grants, read in bulk."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from rbac import matrix
from rbac.engine import decide
from rbac.grants import effective_grants, load_grants, load_grants_many
from rbac.models import Application
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]


def test_bulk_grants_equal_each_users_own(demo_users) -> None:  # type: ignore[no-untyped-def]
    ids = [user.pk for user in demo_users.values()]
    bulk = load_grants_many(ids)
    for user_id in ids:
        one = load_grants(user_id)
        assert bulk[user_id] == one
        assert dict(bulk[user_id].sources) == dict(one.sources)
    assert bulk[ids[0]].roles == {"admin", "developer"}  # alice: direct roles
    assert "deployer" in bulk[demo_users["carol@acme.test"].pk].roles  # carol: through group devops


def test_bulk_grants_of_nobody_and_of_a_user_without_grants(demo_users) -> None:  # type: ignore[no-untyped-def]
    assert load_grants_many([]) == {}
    loner = UserFactory(email="loner@acme.test")
    assert load_grants_many([loner.pk])[loner.pk].as_claims() == {
        kind: [] for kind in ("roles", "groups", "scopes", "resources", "permissions")
    }


def test_every_cell_is_the_engines_decision(demo_users) -> None:  # type: ignore[no-untyped-def]
    application = Application.objects.get(slug="demo")
    policies = list(application.tool_policies.order_by("tool_name"))
    grid, shown = matrix.page(application)
    assert grid.tools == tuple(policy.tool_name for policy in policies)
    everyone = {user.email: user for user in User.objects.all()}  # the demo users and the tenant's admin
    assert set(demo_users) < set(everyone)
    assert [row.email for row in grid.rows] == sorted(everyone)
    for row in grid.rows:
        grants = effective_grants(everyone[row.email])
        for policy, cell in zip(policies, row.cells, strict=True):
            assert cell == decide(grants, policy.requirement()), (row.email, policy.tool_name)
    bob = next(row for row in grid.rows if row.email == "bob@acme.test")
    assert any(not cell.allowed and "denied" in cell.reason for cell in bob.cells)


def test_an_inactive_user_is_denied_everything(demo_users) -> None:  # type: ignore[no-untyped-def]
    alice = demo_users["alice@acme.test"]
    alice.is_active = False
    alice.save()
    grid, _ = matrix.page(Application.objects.get(slug="demo"), query="alice")
    assert [row.email for row in grid.rows] == ["alice@acme.test"]
    assert all(not cell.allowed and cell.reason == "authentication required" for cell in grid.rows[0].cells)


def test_filters_by_email_and_tool(demo_users) -> None:  # type: ignore[no-untyped-def]
    application = Application.objects.get(slug="demo")
    tool = application.tool_policies.order_by("tool_name").first().tool_name
    grid, _ = matrix.page(application, query="CAROL", tool=tool)
    assert grid.tools == (tool,)
    assert [row.email for row in grid.rows] == ["carol@acme.test"]


def test_a_page_costs_a_fixed_number_of_queries(demo_users) -> None:  # type: ignore[no-untyped-def]
    application = Application.objects.get(slug="demo")
    for number in range(60):
        UserFactory(email=f"many-{number:02d}@acme.test")
    with CaptureQueriesContext(connection) as few:
        matrix.page(application, query="many")
    with CaptureQueriesContext(connection) as more:
        grid, shown = matrix.page(application)
    assert len(grid.rows) == matrix.PER_PAGE and shown.paginator.num_pages == 2
    assert len(more) == len(few) <= 4


def test_csv_holds_every_page_and_quotes_formula_like_emails(demo_users) -> None:  # type: ignore[no-untyped-def]
    application = Application.objects.get(slug="demo")
    for number in range(7):
        UserFactory(email=f"bulk-{number}@acme.test")
    UserFactory(email="=cmd@acme.test")
    rows = list(csv.reader(io.StringIO("".join(matrix.csv_lines(application, batch=3)))))
    policies = list(application.tool_policies.order_by("tool_name"))
    assert rows[0] == ["email", "active", *(policy.tool_name for policy in policies)]
    emails = [row[0] for row in rows[1:]]
    assert len(emails) == User.objects.count() and len(set(emails)) == len(emails)
    assert "'=cmd@acme.test" in emails
    bob = next(row for row in rows[1:] if row[0] == "bob@acme.test")
    grants = effective_grants(demo_users["bob@acme.test"])
    assert bob[2:] == ["allowed" if decide(grants, p.requirement()).allowed else "denied" for p in policies]
