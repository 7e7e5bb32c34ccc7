"""Databases of a test's own on the suite's Postgres server, beside the test database (backup and restore tests)."""

from __future__ import annotations

import psycopg
from django.conf import settings


class Databases:
    """Databases of our own next to the test database (names start with test_: the suite's fast password hasher is
    accepted there, settings.py refuses it anywhere else). Dropped at the end, whatever happens."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        self.params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"]}
        if db.get("PASSWORD"):
            self.params["password"] = db["PASSWORD"]
        self.base = "test_" + str(db["NAME"]).removeprefix("test_")
        self.made: list[str] = []

    def url(self, name: str) -> str:
        password = f":{self.params['password']}" if "password" in self.params else ""
        return f"postgres://{self.params['user']}{password}@{self.params['host']}:{self.params['port']}/{name}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **self.params) as conn:
            conn.execute(sql)

    def create(self, suffix: str) -> str:
        name = f"{self.base}_{suffix}"
        self.drop(name)  # a crashed earlier run's
        self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for name in self.made:
            self.drop(name)
