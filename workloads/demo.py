"""Demo workloads of `manage.py seed_demo` (rows only: the renewal job issues their first SVIDs)."""

from __future__ import annotations

from workloads.models import Workload

DEMO_WORKLOADS = {
    "acme": [
        ("billing-api", "/billing/api", "Demo: the billing service's API (mTLS server)."),
        ("billing-worker", "/billing/worker", "Demo: a batch job that calls the billing API (mTLS client)."),
    ],
}


def seed_workloads(slug: str) -> list[Workload]:
    """Create the demo workloads of tenant `slug` in the current schema; a second call changes nothing."""
    return [
        Workload.objects.get_or_create(name=name, defaults={"spiffe_path": path, "description": description})[0]
        for name, path, description in DEMO_WORKLOADS.get(slug, [])
    ]
