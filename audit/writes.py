"""The one write path: how a service function writes rows and their one audit event.

Every change to tenant or platform data goes through a service function of the app that owns the model
(`<app>/services.py`), whichever door it came through: a dashboard page, an inline, a bulk action, the
management API, a management command. A service function

- is decorated with `@service`: its own durable transaction (`transaction.atomic(durable=True)`), never
  nested in a caller's, so when it returns its rows and its audit event are committed together. A service
  function that is a step of another one is called as ``func.nested(...)``, which joins the caller's
  transaction instead;
- names its event literally in its body, one name per change (``<app>.<thing>_created|_changed|_deleted``
  or a verb of its own such as ``rbac.role_granted``): `tests/audit/test_write_paths.py` checks that each
  event of `audit.catalog` is written by exactly one service function;
- defers side effects (cache invalidation, notifications, Vault deletes) with `transaction.on_commit`.

`save` and `delete` below are the steps most service functions are made of; they run in the caller's
transaction and write the event with the before and after values of the row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

from django.db import models, transaction

from audit.diff import changes, snapshot
from audit.recorder import record

P = ParamSpec("P")
R = TypeVar("R")


class ServiceFunction(Protocol[P, R]):
    """A service function: called plainly it is its own durable transaction; `.nested` joins the caller's."""

    __wrapped__: Callable[P, R]
    nested: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...


def service(func: Callable[P, R]) -> ServiceFunction[P, R]:
    """Make `func` a service function (see the module's docstring)."""

    @functools.wraps(func)
    def durable(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic(durable=True):
            return func(*args, **kwargs)

    @functools.wraps(func)
    def nested(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic():
            return func(*args, **kwargs)

    durable.nested = nested  # type: ignore[attr-defined]
    durable.is_service = True  # type: ignore[attr-defined]
    return durable  # type: ignore[return-value]


def _stored(obj: models.Model) -> models.Model | None:
    if obj.pk is None:
        return None
    return type(obj)._default_manager.filter(pk=obj.pk).first()


def save(
    actor: Any,
    obj: models.Model,
    *,
    created: str,
    changed: str,
    m2m: Mapping[str, Iterable[Any]] | None = None,
    data: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
) -> models.Model:
    """Create or update `obj` and set its many-to-many fields to `m2m`, with one event: `created` (data:
    before None, after) or `changed` (data: before, after, changes), or none when nothing changed.
    `data` adds to the event's data; a callable is called after the write (for details that depend on it, such
    as whose access the write changed: `rbac.access_diff`).

    Validation is the caller's (a form, a serializer or the service function): this only writes."""
    old = _stored(obj)
    before = snapshot(old) if old is not None else None
    obj.save()
    for name, values in (m2m or {}).items():
        getattr(obj, name).set(values)
    after = snapshot(obj)
    diff = changes(before, after) if before is not None else None
    if diff == {}:
        return obj  # nothing changed: no event
    extra = dict((data() if callable(data) else data) or {})
    if before is None:
        record(actor, created, target=obj, data={"before": None, "after": after, **extra})
    else:
        record(actor, changed, target=obj, data={"before": before, "after": after, "changes": diff, **extra})
    return obj


def delete(actor: Any, obj: models.Model, *, event: str, data: Mapping[str, Any] | None = None) -> None:
    """Delete `obj` with one event (data: before, after None), written first, while the row still exists."""
    record(actor, event, target=obj, data={"before": snapshot(obj), "after": None, **(data or {})})
    obj.delete()
