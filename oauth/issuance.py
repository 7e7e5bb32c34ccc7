"""What the token endpoint reads of a tenant on every request, kept in each process: the current signing key,
the MCP endpoints of its active applications (the resources tokens are mostly issued for), its RBAC scope
names (the scopes clients may ask for) and the rows of the clients that asked for tokens.

A copy is used only while the tenant's version token in Redis is the one it was read under. Any change to
signing keys, applications, scopes or clients drops this process's copy at once and, after commit, moves
the version token, so every other process reads again on its next request. Without Redis, every request
reads the database, as it would without this cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import connection
from django.db.models.signals import post_delete, post_save

from authsec_site.lib import coherence
from authsec_site.lib.ttlcache import TTLCache

T = TypeVar("T")

VERSION_KEY = "oauth:issuance-version"
TTL = 300.0  # seconds: an upper bound on a copy's life should a version announcement be lost
_copies: TTLCache[tuple[str, str], tuple[str, Any]] = TTLCache(4096, TTL)
# Inside `one_read()`: the version token of each schema, read once (a token request asks up to seven times).
_request_versions: ContextVar[dict[str, str | None] | None] = ContextVar("oauth_issuance_versions", default=None)


@contextmanager
def one_read() -> Iterator[None]:
    """Within: the version token is read from Redis once per schema, as one request needs it. A change made
    meanwhile by this request drops the copies here at once (`changed`), so it is still seen."""
    reset = _request_versions.set({})
    try:
        yield
    finally:
        _request_versions.reset(reset)


def _version() -> str | None:
    versions = _request_versions.get()
    if versions is not None and connection.schema_name in versions:
        return versions[connection.schema_name]
    version = coherence.version_or_none(VERSION_KEY, what="OAuth issuance")
    if versions is not None:
        versions[connection.schema_name] = version
    return version


def cached(name: str, load: Callable[[], T], *, keep_none: bool = True) -> T:
    """The current tenant's `name`, from this process's copy if it is still current, else `load()` (kept unless it is
    None and `keep_none` is false: lookups of unknown ids must not crowd out real copies)."""
    version = _version()
    if version is None:
        return load()
    key = (connection.schema_name, name)
    hit = _copies.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = load()
    if value is not None or keep_none:
        _copies.set(key, (version, value))
    return value


def changed(**kwargs: Any) -> None:
    """Drop the current tenant's copies here now, and everywhere after commit."""
    schema = connection.schema_name
    _copies.invalidate_where(lambda key: key[0] == schema)

    coherence.move_after_commit(VERSION_KEY, schema=schema, what="OAuth issuance")


def clear() -> None:
    """Forget every copy of this process (tests roll back the rows a copy was read from)."""
    _copies.clear()


def connect() -> None:
    for model in ("oauth.SigningKey", "rbac.Application", "rbac.Scope", "oauth.Client"):
        post_save.connect(changed, sender=model, dispatch_uid=f"oauth-issuance-save-{model}")
        post_delete.connect(changed, sender=model, dispatch_uid=f"oauth-issuance-delete-{model}")
