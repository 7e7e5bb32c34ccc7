"""Shared pieces of the management API: pagination, error handling, audited writes, query-string filters."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from rest_framework import exceptions, status, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer, as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

import audit
from audit.diff import snapshot

logger = logging.getLogger(__name__)


class StandardPagination(PageNumberPagination):
    """50 items a page; ``?page_size=`` up to 500."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: Django validation errors → 400 with messages, integrity conflicts → 409, and
    any other error → a JSON 500 carrying the request id (logged here, never a stack trace in the body).

    With DEBUG on, unexpected errors are left to Django so developers get the debug page.
    """
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    request = context.get("request")
    request_id = getattr(request, "request_id", "") if request is not None else ""
    if isinstance(exc, (IntegrityError, ProtectedError, RestrictedError)):
        logger.info("API write conflicted with existing data (request %s): %s", request_id, type(exc).__name__)
        return Response(
            {"detail": "The change conflicts with existing data; reload and try again.", "request_id": request_id},
            status=status.HTTP_409_CONFLICT,
        )
    if settings.DEBUG:
        return None
    logger.exception("Unhandled error in the management API (request %s)", request_id)
    return Response(
        {"detail": "Internal server error.", "request_id": request_id},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


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
