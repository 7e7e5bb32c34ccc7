"""Demo workloads: acme gets two, globex none; seeding twice changes nothing."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tenants.models import Tenant
from workloads.demo import seed_workloads
from workloads.models import Workload

pytestmark = pytest.mark.django_db


def test_seeding_is_idempotent_and_per_tenant(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        first = seed_workloads("acme")
        assert [w.pk for w in seed_workloads("acme")] == [w.pk for w in first]
        assert sorted(Workload.objects.values_list("spiffe_path", flat=True)) == ["/billing/api", "/billing/worker"]
    with schema_context(globex.schema_name):
        assert seed_workloads("globex") == [] and not Workload.objects.exists()
