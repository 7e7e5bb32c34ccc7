"""Before/after snapshots of model instances for audit events (secrets never included)."""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.recorder import redact

_SKIP = {"password", "created_at", "updated_at", "last_login"}


def _value(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_value(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def snapshot(obj: models.Model) -> dict[str, Any]:
    """Field values of `obj` (many-to-many as sorted names), for a before/after audit record."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in _SKIP or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue  # secrets, and times every save changes (e.g. DOT's `created` / `updated`)
        if field.is_relation:
            related = getattr(obj, field.name, None)
            data[field.name] = str(related) if related is not None else None
        else:
            data[field.name] = _value(field.value_from_object(obj))
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            if field.remote_field.through._meta.auto_created:
                data[field.name] = sorted(str(item) for item in getattr(obj, field.name).all())
    return redact(data)


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Only what differs: ``{field: {"before": …, "after": …}}``."""
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
