"""Shared pieces of the management API views: writes through the service functions, query-string filters."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import exceptions, viewsets
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from rbac import access_diff


class ServiceModelViewSet(viewsets.ModelViewSet):
    """A model viewset whose every create, update and delete goes through the model's service functions, the
    same ones the dashboard calls, so a change has one event whichever door it came through.

    `save_service(obj, *, actor, m2m)` and `delete_service(obj, *, actor)` are `audit.writes.service`
    functions, declared with `staticmethod`. The serializer validates; the service writes and audits. As on the
    dashboard, RBAC writes record whose access they changed (`rbac.access_diff.recording`, ``access_changes``).
    """

    save_service: Any = None
    delete_service: Any = None

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = self._save(serializer, self.queryset.model())

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: models.Model) -> None:
        with access_diff.recording():
            self.delete_service(instance, actor=self.request.user)

    def _save(self, serializer: BaseSerializer, obj: models.Model) -> models.Model:
        data: dict[str, Any] = dict(serializer.validated_data)
        many = {field.name for field in obj._meta.many_to_many}
        m2m = {name: data.pop(name) for name in list(data) if name in many}
        for name, value in data.items():
            setattr(obj, name, value)
        with access_diff.recording():
            return self.save_service(obj, actor=self.request.user, m2m=m2m)


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
