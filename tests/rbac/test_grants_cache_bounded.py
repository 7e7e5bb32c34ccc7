"""The process's cache of effective grants keeps one entry per user, however often RBAC changes.

Keyed by the RBAC version token too, every change left one entry per active user that no request would read
again, up to `LOCAL_MAX` of them (docs/benchmarks.md, "Memory")."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from rbac import grants as grants_module
from rbac.grants import grants_for_user_id
from tenants.models import Tenant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_one_cached_entry_per_user_however_often_rbac_changes(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        users = [UserFactory() for _ in range(3)]
        grants_module.clear_local_cache()
        for _ in range(20):
            grants_module.bump_version()
            for user in users:
                assert grants_for_user_id(user.pk) == grants_module.load_grants(user.pk)
        assert len(grants_module._local) == 3  # noqa: SLF001
