"""The rows a token request reads and issues, each in one statement (the token endpoint, `TenantOAuth2Validator`).

`select_linked` reads the presented grant or refresh token with the rows it points at (what
``select_related(...).filter(...).first()`` reads), from a statement built once: the ORM's compiler spent more time
building that join for every request than Postgres spent answering it.

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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connections, router
from django.db.models import Model
from django.db.models.signals import post_save, pre_save


def select_linked(
    model: type[Model], field: str, value: Any, related: tuple[str, ...] = (), newest_first: str = ""
) -> Any:
    """The row of `model` whose `field` equals `value`, with the rows its foreign keys `related` point at (None where
    a key is null), or None. `field` is unique, or `newest_first` names a nullable field that orders the rows sharing
    a value, nulls first, then descending (the unused refresh token before used ones of the same checksum)."""
    using = router.db_for_read(model)
    sql, parts = _select_statement(using, model, field, related, newest_first)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [model._meta.get_field(field).get_db_prep_value(value, connections[using])])
        found = cursor.fetchone()
    if found is None:
        return None
    at, made = 0, []
    for part_model, names in parts:
        values = list(found[at : at + len(names)])
        at += len(names)
        missing = values[names.index(part_model._meta.pk.attname)] is None  # a null key: no row joined
        made.append(None if missing else _from_db(using, part_model, names, values))
    row = made[0]
    for name, linked in zip(related, made[1:], strict=True):
        model._meta.get_field(name).set_cached_value(row, linked)
    return row


def _from_db(using: str, model: type[Model], names: list[str], values: list[Any]) -> Model:
    """`Model.from_db` with each value through the backend's and its field's converters, as the ORM's iterator
    converts them (a JSON field's text decoded, …)."""
    connection = connections[using]
    for index, col, converters in _converters(using, model):
        for convert in converters:
            values[index] = convert(values[index], col, connection)
    return model.from_db(using, names, values)


@lru_cache(maxsize=16)
def _converters(using: str, model: type[Model]) -> list[tuple[int, Any, list[Any]]]:
    connection = connections[using]
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if converters:
            found.append((index, col, converters))
    return found


@lru_cache(maxsize=16)
def _select_statement(
    using: str, model: type[Model], field: str, related: tuple[str, ...], newest_first: str
) -> tuple[str, list[tuple[type[Model], list[str]]]]:
    """The statement and, per model in the row it returns, the field names of its columns (the model's own first)."""
    quote = connections[using].ops.quote_name
    meta = model._meta
    parts: list[tuple[type[Model], list[str]]] = [(model, [f.attname for f in meta.concrete_fields])]
    columns = [f"t0.{quote(f.column)}" for f in meta.concrete_fields]
    joins = []
    for index, name in enumerate(related, start=1):
        fk = meta.get_field(name)
        target = fk.related_model._meta
        parts.append((fk.related_model, [f.attname for f in target.concrete_fields]))
        columns += [f"t{index}.{quote(f.column)}" for f in target.concrete_fields]
        joins.append(
            f"LEFT JOIN {quote(target.db_table)} t{index}"
            f" ON t{index}.{quote(fk.target_field.column)} = t0.{quote(fk.column)}"
        )
    order = ""
    if newest_first:
        order = f" ORDER BY t0.{quote(meta.get_field(newest_first).column)} DESC NULLS FIRST"
    where = f"t0.{quote(meta.get_field(field).column)} = %s"
    select = f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} t0 {' '.join(joins)}"  # noqa: S608 - see the docstring
    return f"{select} WHERE {where}{order} LIMIT 1", parts


@dataclass(frozen=True)
class Guard:
    """Data-modifying CTEs that run first in the insert statement (`ctes`, with `params`): the rows are inserted only
    if the CTE named `gate` returned a row, and the statement also answers `outputs` (SQL over `from_clause`). The
    refresh token's single use is one (`oauth.refresh.consume_guard`)."""

    ctes: str
    params: list[Any]
    gate: str
    outputs: str
    from_clause: str

    @property
    def shape(self) -> tuple[str, str, str, str]:
        """What the statement's text depends on (not the parameters)."""
        return self.ctes, self.gate, self.outputs, self.from_clause


def announce(rows: Sequence[Model]) -> None:
    """`pre_save` of each new row, in order, as `Model.save` sends it before its INSERT."""
    using = _using(rows)
    for row in rows:
        pre_save.send(sender=type(row), instance=row, raw=False, using=using, update_fields=None)


def insert_linked(rows: Sequence[Model], guard: Guard | None = None) -> tuple[Any, ...] | None:
    """Insert `rows` (new, unsaved) in one statement. A foreign key of a row may point at an earlier row of the list
    (the instance assigned to it, not yet saved): it gets that row's new key. Sets each row's primary key and sends
    its `post_save`; `announce` must have sent the `pre_save`s. With a `guard`, returns its `outputs`; when its gate
    stayed empty nothing is inserted (the rows stay unsaved, no `post_save`)."""
    using = _using(rows)
    connection = connections[using]
    shape: list[tuple[type[Model], tuple[tuple[str, int | None], ...]]] = []
    params: list[Any] = list(guard.params) if guard is not None else []
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
        sql = _statement(using, tuple(shape), None if guard is None else guard.shape)
        cursor.execute(sql, params)
        answer = cursor.fetchone()
    keys, outputs = answer[: len(rows)], answer[len(rows) :]
    if keys[0] is None:
        return outputs  # the guard's gate stayed empty
    for row, key in zip(rows, keys, strict=True):
        row.pk = key
    for row, (_model, links) in zip(rows, shape, strict=True):
        for name, earlier in links:
            if earlier is not None:
                setattr(row, name, rows[earlier].pk)  # the key the statement gave the row it points at
        row._state.adding = False  # noqa: SLF001 - as Model.save_base leaves a saved row
        row._state.db = using  # noqa: SLF001
    for row in rows:
        post_save.send(sender=type(row), instance=row, created=True, update_fields=None, raw=False, using=using)
    return outputs if guard is not None else None


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
def _statement(
    using: str,
    shape: tuple[tuple[type[Model], tuple[tuple[str, int | None], ...]], ...],
    guard: tuple[str, str, str, str] | None,
) -> str:
    """The statement for rows of these models, each column a parameter or the key of an earlier row, after the
    guard's CTEs. Identifiers come from the models' metadata, quoted; every value is a parameter."""
    quote = connections[using].ops.quote_name
    parts = [guard[0]] if guard is not None else []
    for index, (model, links) in enumerate(shape):
        meta = model._meta
        columns = {field.attname: field.column for field in _insert_fields(model)}
        values = ", ".join("%s" if earlier is None else _key_of(earlier) for _name, earlier in links)
        names = ", ".join(quote(columns[name]) for name, _earlier in links)
        if guard is None:
            insert = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({values})"  # noqa: S608 - see the docstring
        else:
            gated = f"SELECT {values} WHERE EXISTS (SELECT 1 FROM {guard[1]})"  # noqa: S608 - see the docstring
            insert = f"INSERT INTO {quote(meta.db_table)} ({names}) {gated}"  # noqa: S608 - see the docstring
        parts.append(f"r{index} AS ({insert} RETURNING {quote(meta.pk.column)} AS k)")
    keys = ", ".join(_key_of(index) for index in range(len(shape)))
    if guard is None:
        return f"WITH {', '.join(parts)} SELECT {keys}"
    return f"WITH {', '.join(parts)} SELECT {keys}, {guard[2]} FROM {guard[3]}"  # noqa: S608 - see the docstring


def _key_of(index: int) -> str:
    return f"(SELECT k FROM r{index})"  # noqa: S608 - a CTE of this statement
