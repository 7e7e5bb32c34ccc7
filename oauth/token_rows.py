"""The rows a token request issues, written in one statement (the token endpoint, `TenantOAuth2Validator`).

A code exchange stores an ID token, an access token that points at it and a refresh token that points at the access
token; a refresh stores the same three; client credentials an access token. `Model.save` sends each as a
statement of its own, and builds each statement through the ORM's compiler. `insert_linked` writes them with one
``INSERT`` per row chained in a single statement (``WITH r0 AS (INSERT … RETURNING id), r1 AS (INSERT … VALUES (…,
(SELECT id FROM r0), …)) …``): one round trip, and a statement text built once per chain shape.

What `Model.save` does for a new row is kept: each field's `pre_save` (``auto_now``, django-oauth-toolkit's token
checksum) and `get_db_prep_save` give the values, the rows get their primary keys, and `pre_save` / `post_save`
are sent as `save` sends them (`announce` sends the `pre_save`s, for callers that do work between the two, such as
the rotation's single use). Identifiers come only from the models' own metadata, quoted; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django.db import connections, router
from django.db.models import Model
from django.db.models.signals import post_save, pre_save


def announce(rows: Sequence[Model]) -> None:
    """`pre_save` of each new row, in order, as `Model.save` sends it before its INSERT."""
    for row in rows:
        pre_save.send(sender=type(row), instance=row, raw=False, using=_using(rows), update_fields=None)


def insert_linked(rows: Sequence[Model]) -> None:
    """Insert `rows` (new, unsaved) in one statement. A foreign key of a row may point at an earlier row of the list
    (the instance assigned to it, not yet saved): it gets that row's new key. Sets each row's primary key and sends
    its `post_save`; `announce` must have sent the `pre_save`s."""
    using = _using(rows)
    connection = connections[using]
    shape: list[tuple[type[Model], tuple[tuple[str, int | None], ...]]] = []
    params: list[Any] = []
    for row in rows:
        links: list[tuple[str, int | None]] = []
        for field in _insert_fields(type(row)):
            earlier = _earlier_row(field, row, rows)
            if earlier is not None:
                links.append((field.attname, earlier))
                continue
            links.append((field.attname, None))
            params.append(field.get_db_prep_save(field.pre_save(row, True), connection=connection))
        shape.append((type(row), tuple(links)))
    with connection.cursor() as cursor:
        cursor.execute(_statement(using, tuple(shape)), params)
        keys = cursor.fetchone()
    for row, key in zip(rows, keys, strict=True):
        row.pk = key
        for field in _insert_fields(type(row)):
            earlier = _earlier_row(field, row, rows)
            if earlier is not None:
                setattr(row, field.attname, rows[earlier].pk)
        row._state.adding = False  # noqa: SLF001 - as Model.save_base leaves a saved row
        row._state.db = using  # noqa: SLF001
    for row in rows:
        post_save.send(sender=type(row), instance=row, created=True, update_fields=None, raw=False, using=using)


def _using(rows: Sequence[Model]) -> str:
    return router.db_for_write(type(rows[0]))


def _insert_fields(model: type[Model]) -> list[Any]:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _earlier_row(field: Any, row: Model, rows: Sequence[Model]) -> int | None:
    """The index in `rows` of the unsaved row `field` of `row` points at, if any."""
    if not field.is_relation or not field.is_cached(row):
        return None
    target = field.get_cached_value(row)
    if target is None or target.pk is not None:
        return None
    for index, other in enumerate(rows):
        if other is target:
            if other is row:
                break
            return index
    raise ValueError(f"{type(row).__name__}.{field.name} points at an unsaved row that is not written before it")


@lru_cache(maxsize=32)
def _statement(using: str, shape: tuple[tuple[type[Model], tuple[tuple[str, int | None], ...]], ...]) -> str:
    """The statement for rows of these models, each column a parameter or the key of an earlier row. Identifiers come
    from the models' metadata, quoted; every value is a parameter."""
    quote = connections[using].ops.quote_name
    parts = []
    for index, (model, links) in enumerate(shape):
        meta = model._meta
        columns = {field.attname: field.column for field in _insert_fields(model)}
        values = ", ".join("%s" if earlier is None else _key_of(earlier) for _name, earlier in links)
        names = ", ".join(quote(columns[name]) for name, _earlier in links)
        insert = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({values})"  # noqa: S608 - see the docstring
        parts.append(f"r{index} AS ({insert} RETURNING {quote(meta.pk.column)} AS k)")
    keys = ", ".join(_key_of(index) for index in range(len(shape)))
    return f"WITH {', '.join(parts)} SELECT {keys}"


def _key_of(index: int) -> str:
    return f"(SELECT k FROM r{index})"  # noqa: S608 - a CTE of this statement
