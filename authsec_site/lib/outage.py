"""Which backing service an exception says is down: the database, Redis or Vault (None: not an outage).

Callers answer an outage with a protocol error and HTTP 503 (`Retry-After`), never a stack trace or an error page
of the 500 kind: the OAuth endpoints with ``temporarily_unavailable`` (`oauth.errors`), the MCP endpoint with a
JSON-RPC error (`mcp_endpoint.gate`), pages and the API through the 500 handler (`authsec_site.views`)."""

from __future__ import annotations

import psycopg
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsec_site.lib.vault import VaultError

RETRY_AFTER = 5  # seconds a client is told to wait
_NAMES = {"database": "The database", "redis": "Redis", "vault": "Vault"}


def unavailable(exc: BaseException | None) -> str | None:
    """ "database", "redis" or "vault" when `exc` (or what caused it) is that service being unreachable."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)):
            return "database"
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
            return "redis"
        if isinstance(exc, VaultError) and exc.reason in ("unreachable", "sealed"):
            return "vault"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def message(service: str) -> str:
    """What a client is told: the service, and that trying again shortly is the answer."""
    return f"{_NAMES.get(service, service)} is unavailable right now; try again in a few seconds."
