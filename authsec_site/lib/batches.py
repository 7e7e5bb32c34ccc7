"""Deleting many rows without one long transaction or one huge statement: a model-free helper for cleanup jobs."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet


def delete_in_batches(queryset: QuerySet[Any], batch_size: int) -> int:
    """Delete the rows of `queryset`, `batch_size` at a time, each batch in its own transaction; returns how many
    rows of the queryset's model went. Each batch re-applies the queryset's conditions, so a row that stopped
    matching since it was selected (e.g. a token refreshed in between) is kept."""
    model = queryset.model
    total = 0
    while True:
        pks = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not pks:
            return total
        with transaction.atomic():
            _, per_model = queryset.filter(pk__in=pks).delete()
        deleted = per_model.get(model._meta.label, 0)
        total += deleted
        if deleted == 0:
            return total  # every selected row stopped matching: nothing more is due now
