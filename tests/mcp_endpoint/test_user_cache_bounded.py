"""The MCP endpoint's cache of a token's user (email, active flag, grants) keeps one entry per user, however often
RBAC changes: keyed by the RBAC version token too, every change left one entry per active user that no request
would read again, up to `USERS_MAX` (docs/benchmarks.md, "Memory").

`bearer._user` runs as on the endpoint's threads: on a connection of its own (`commit_in`), over the committed
demo users."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from accounts.models import User
from mcp_endpoint import bearer
from tests.support.mcp import Committed, commit_in

pytestmark = pytest.mark.django_db
EMAILS = ["alice@acme.test", "bob@acme.test", "carol@acme.test"]


def _user(user_id: int, version: str) -> Any:
    return commit_in("tenant_acme", lambda: bearer._user("tenant_acme", user_id, version))  # noqa: SLF001


def test_one_cached_entry_per_user_across_rbac_versions(committed: Committed) -> None:
    ids = commit_in("tenant_acme", lambda: [User.objects.get(email=email).pk for email in EMAILS])
    bearer._users.clear()  # noqa: SLF001
    for _ in range(10):
        version = uuid.uuid4().hex
        assert [_user(user_id, version)[0] for user_id in ids] == EMAILS
    assert len(bearer._users) == 3  # noqa: SLF001


def test_a_new_version_rereads_the_user(committed: Committed) -> None:
    bearer._users.clear()  # noqa: SLF001
    alice = commit_in("tenant_acme", lambda: User.objects.get(email="alice@acme.test").pk)
    first = _user(alice, "v1")
    assert _user(alice, "v1") is first  # the cached entry
    assert _user(alice, "v2") is not first and _user(alice, "v2")[0] == "alice@acme.test"
    assert _user(10**9, "v2") is None  # no such user, cached as such
    assert len(bearer._users) == 2  # noqa: SLF001
