"""Error answers of the management API (settings.REST_FRAMEWORK["EXCEPTION_HANDLER"]): always JSON, with
field messages for validation errors and never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models.deletion import ProtectedError, RestrictedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: Django validation errors (from models and services) → 400 with messages,
    integrity conflicts (e.g. a concurrent duplicate) → 409, and any other error → a JSON 500 carrying the
    request id, logged here. With DEBUG on, unexpected errors are left to Django's debug page.
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
    logger.error("Unhandled error in the management API (request %s)", request_id, exc_info=exc)
    return Response(
        {"detail": "Internal server error.", "request_id": request_id},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
