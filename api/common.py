"""Shared pieces of the management API views: audited writes and query-string filters."""

from __future__ import annotations

from django.db import models, transaction
from rest_framework import exceptions, viewsets
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

import audit
from audit.diff import snapshot


class AuditedModelViewSet(viewsets.ModelViewSet):
    """A model viewset whose every create, update and delete runs in one transaction with its audit event
    ``api.<model>.created|updated|deleted`` (data: before and after snapshots).

    Subclasses change *how* a row is written by overriding `create_object`, `update_object`, `delete_object`
    (e.g. to go through `rbac.services`); the audit event is written here either way.
    """

    def _audit(self, verb: str, obj: models.Model, before: dict | None, after: dict | None) -> None:
        audit.record(
            self.request.user,
            f"api.{obj._meta.model_name}.{verb}",
            target=obj,
            data={"before": before, "after": after},
        )

    # --- how rows are written (override to call a service) ---
    def create_object(self, serializer: BaseSerializer) -> models.Model:
        return serializer.save()

    def update_object(self, serializer: BaseSerializer) -> models.Model:
        return serializer.save()

    def delete_object(self, instance: models.Model) -> None:
        instance.delete()

    # --- DRF hooks ---
    def perform_create(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            obj = self.create_object(serializer)
            self._audit("created", obj, None, snapshot(obj))

    def perform_update(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            before = snapshot(serializer.instance)
            obj = self.update_object(serializer)
            self._audit("updated", obj, before, snapshot(obj))

    def perform_destroy(self, instance: models.Model) -> None:
        with transaction.atomic():
            # Recorded first, while the row (and its id) still exists; the transaction makes it all-or-nothing.
            self._audit("deleted", instance, snapshot(instance), None)
            self.delete_object(instance)


# --- query-string filters --------------------------------------------------------------------------------------


def query_int(request: Request, name: str) -> int | None:
    """An integer query parameter, or None when absent; 400 when it is not an integer."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: [f"'{raw}' is not an integer id."]})


def query_bool(request: Request, name: str) -> bool | None:
    """A boolean query parameter (true/false/1/0/yes/no), or None when absent; 400 otherwise."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise exceptions.ValidationError({name: [f"'{raw}' is not a boolean (use true or false)."]})


def query_str(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return raw if raw not in (None, "") else None
