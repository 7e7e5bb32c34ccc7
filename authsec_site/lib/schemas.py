"""Every schema of the database (the platform's and each tenant's), for jobs that run once per schema."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import get_tenant_model


def queue_per_schema(task: Any) -> list[str]:
    """Queue the Celery `task` once per schema, with the schema name as its argument; returns the names."""
    schemas = list(get_tenant_model().objects.order_by("schema_name").values_list("schema_name", flat=True))
    for schema_name in schemas:
        task.delay(schema_name)
    return schemas
