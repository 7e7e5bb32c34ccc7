"""The user × tool matrix of one application: every user's decision for every tool, from the one engine.

Reads in bulk — the page's users, the application's tool policies and every shown user's grants
(`rbac.grants.load_grants_many`, one query) — then runs `rbac.engine.decide` per cell, so a page of 50 users ×
100 tools costs a handful of queries and 5,000 pure decisions. Inactive users hold no grants (as
`rbac.grants.effective_grants` says), so the engine denies them every tool.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet

from accounts.models import User
from rbac.engine import Decision, Grants, Requirement, decide
from rbac.grants import load_grants_many
from rbac.models import Application, ToolPolicy

PER_PAGE = 50


@dataclass(frozen=True)
class MatrixRow:
    user_id: int
    email: str
    is_active: bool
    cells: tuple[Decision, ...]


@dataclass(frozen=True)
class Matrix:
    tools: tuple[str, ...]
    rows: tuple[MatrixRow, ...]


def tool_policies(application: Application, tool: str = "") -> list[ToolPolicy]:
    """The application's tool policies (the matrix's columns), only `tool` when one is named."""
    policies = ToolPolicy.objects.filter(application=application).order_by("tool_name")
    if tool:
        policies = policies.filter(tool_name=tool)
    return list(policies)


def users(query: str = "") -> QuerySet[User]:
    """The tenant's users (the matrix's rows), those whose email contains `query` when one is given."""
    found = User.objects.order_by("email", "pk")
    return found.filter(email__icontains=query) if query else found


def decide_rows(people: Iterable[User], policies: list[ToolPolicy]) -> Iterator[MatrixRow]:
    """One row per user: the engine's decision for each policy, with grants read in one query."""
    people = list(people)
    requirements: list[Requirement] = [policy.requirement() for policy in policies]
    grants_of = load_grants_many([person.pk for person in people if person.is_active])
    for person in people:
        grants: Grants | None = grants_of.get(person.pk) if person.is_active else None
        yield MatrixRow(
            person.pk,
            person.email,
            person.is_active,
            tuple(decide(grants, requirement) for requirement in requirements),
        )


def page(application: Application, *, query: str = "", tool: str = "", number: str | int = 1) -> tuple[Matrix, Page]:
    """One page of the matrix (PER_PAGE users; an out-of-range or malformed page number gives the nearest page)."""
    policies = tool_policies(application, tool)
    shown = Paginator(users(query).only("pk", "email", "is_active"), PER_PAGE).get_page(number)
    rows = tuple(decide_rows(shown.object_list, policies))
    return Matrix(tuple(policy.tool_name for policy in policies), rows), shown


def _cell(value: str) -> str:
    # Spreadsheets run a cell that starts with one of these as a formula (CSV injection): quote it as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_lines(application: Application, *, query: str = "", tool: str = "", batch: int = 500) -> Iterator[str]:
    """The whole filtered matrix as CSV: a header (email, active, each tool), then a row per user with
    ``allowed`` or ``denied`` per tool; users are decided `batch` at a time."""
    policies = tool_policies(application, tool)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(["email", "active", *(policy.tool_name for policy in policies)])
    yield flush()
    people = users(query).only("pk", "email", "is_active")
    last: tuple[str, int] | None = None
    while True:
        # Keyset pagination on (email, pk): no OFFSET scans however many users there are.
        window = people if last is None else people.filter(Q(email__gt=last[0]) | Q(email=last[0], pk__gt=last[1]))
        chunk = list(window[:batch])
        if not chunk:
            return
        for row in decide_rows(chunk, policies):
            writer.writerow(
                [_cell(row.email), "yes" if row.is_active else "no"]
                + ["allowed" if cell.allowed else "denied" for cell in row.cells]
            )
        yield flush()
        last = (chunk[-1].email, chunk[-1].pk)
