"""django-tenants' PostgreSQL backend, without a ``SET search_path`` per request when the path is already right.

django-tenants sends ``SET search_path`` on a request's first query because every `set_tenant` (the tenant
middleware's, once per request) forgets which path the connection has, even when it is the same tenant as the last
request on this persistent connection (``CONN_MAX_AGE``). That is one round trip on every tenant request, about a
tenth of a token request's statements.

This wrapper remembers the path the live connection was last given (`_path_on_connection`): set only after a
``SET search_path`` succeeded, and forgotten on everything that can undo or lose it — ``connect()``, ``close()``,
``rollback()`` and a savepoint rollback (PostgreSQL reverts a ``SET`` with the transaction or savepoint that issued
it). When the path a query needs is the remembered one, no ``SET`` is sent. Forgetting is always safe (it costs one
``SET``); remembering wrongly is what the list above rules out.
"""

from __future__ import annotations

from typing import Any

from django_tenants.postgresql_backend import base
from django_tenants.utils import get_limit_set_calls


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path_on_connection: list[str] | None = None

    def _handle_search_path(self, cursor: Any = None) -> None:
        limited = get_limit_set_calls()
        if limited and not self._setting_search_path and not self.search_path_set_schemas and self.schema_name:
            wanted = self._get_cursor_search_paths()
            if wanted == self._path_on_connection:
                self.search_path_set_schemas = wanted
                return
        super()._handle_search_path(cursor)
        if not self._setting_search_path:
            done = self.search_path_set_schemas
            self._path_on_connection = list(done) if done else None

    def connect(self) -> None:
        self._path_on_connection = None
        super().connect()

    def close(self) -> None:
        self._path_on_connection = None
        super().close()

    def rollback(self) -> None:
        self._path_on_connection = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self._path_on_connection = None
