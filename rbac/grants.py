"""Effective grants of a user: fetched in one query, cached, invalidated on every RBAC change.

Cache coherence across processes rests on a per-tenant version token in Redis: every RBAC change
replaces it with a new random value after commit (`bump_version`, wired to model signals in
`rbac.signals`). Cached grants are keyed by (schema, user, version), so the next request in any worker
misses the stale entry. A random token (not a counter) means a Redis restart that loses the key can
never bring an old version back. If Redis cannot be reached, grants are read from Postgres — the source
of truth — and nothing is cached.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.cache import cache
from django.db import connection

from authsec_site.lib import coherence, metrics, tracing
from authsec_site.lib.ttlcache import TTLCache
from rbac import models as m
from rbac.engine import KINDS, Grants

logger = logging.getLogger(__name__)

VERSION_KEY = "rbac:version"
GRANTS_TTL = 600  # seconds an entry lives in Redis (the version token makes it stale sooner on change)
LOCAL_TTL = 60.0  # seconds an entry lives in this process (bounded staleness even if a bump was lost)
LOCAL_MAX = 10_000


def _tables() -> dict[str, str]:
    """The RBAC tables the grants queries join (names from model metadata, never from input)."""
    return {
        "membership": m.GroupMembership._meta.db_table,
        "group": m.Group._meta.db_table,
        "binding": m.RoleBinding._meta.db_table,
        "role": m.Role._meta.db_table,
        "role_scopes": m.Role.scopes.through._meta.db_table,
        "scope": m.Scope._meta.db_table,
        "role_resources": m.Role.resources.through._meta.db_table,
        "resource": m.Resource._meta.db_table,
        "role_permissions": m.Role.permissions.through._meta.db_table,
        "permission": m.Permission._meta.db_table,
    }


def _sql() -> str:
    t = _tables()
    # kind, name, role it came through, group it came through. Only table names from model metadata are
    # interpolated; the user id is a bound parameter.
    return f"""
WITH g AS (
    SELECT gr.id, gr.name FROM {t["membership"]} gm JOIN "{t["group"]}" gr ON gr.id = gm.group_id
    WHERE gm.user_id = %(user)s
), r AS (
    SELECT b.role_id, ro.name AS role_name, g.name AS via_group
    FROM {t["binding"]} b JOIN {t["role"]} ro ON ro.id = b.role_id LEFT JOIN g ON g.id = b.group_id
    WHERE b.user_id = %(user)s OR b.group_id IN (SELECT id FROM g)
)
SELECT 'groups', g.name, NULL, NULL FROM g
UNION ALL SELECT 'roles', r.role_name, NULL, r.via_group FROM r
UNION ALL SELECT 'scopes', s.name, r.role_name, r.via_group
    FROM r JOIN {t["role_scopes"]} rs ON rs.role_id = r.role_id JOIN {t["scope"]} s ON s.id = rs.scope_id
UNION ALL SELECT 'resources', res.name, r.role_name, r.via_group
    FROM r JOIN {t["role_resources"]} rr ON rr.role_id = r.role_id JOIN {t["resource"]} res ON res.id = rr.resource_id
UNION ALL SELECT 'permissions', pres.name || ':' || p.action, r.role_name, r.via_group
    FROM r JOIN {t["role_permissions"]} rp ON rp.role_id = r.role_id
    JOIN {t["permission"]} p ON p.id = rp.permission_id JOIN {t["resource"]} pres ON pres.id = p.resource_id
"""


_SQL: str | None = None


def _source(kind: str, role: str | None, group: str | None) -> str:
    if kind == "groups":
        return "member"
    if kind == "roles":
        return f"via group {group}" if group else "direct"
    return f"role {role}" + (f" (via group {group})" if group else "")


@tracing.traced("authsec.grants.load")
def load_grants(user_id: int) -> Grants:
    """Read a user's effective grants from the current tenant schema in one query (no cache)."""
    global _SQL
    if _SQL is None:
        _SQL = _sql()
    with connection.cursor() as cursor:
        cursor.execute(_SQL, {"user": user_id})
        rows = cursor.fetchall()
    return _assemble(rows)


def _assemble(rows: list[tuple[str, str, str | None, str | None]]) -> Grants:
    """`Grants` (with sources) from (kind, name, role, group) rows of the grants query."""
    names: dict[str, set[str]] = {kind: set() for kind in KINDS}
    sources: dict[tuple[str, str], list[str]] = {}
    for kind, name, role, group in rows:
        names[kind].add(name)
        source = _source(kind, role, group)
        bucket = sources.setdefault((kind, name), [])
        if source not in bucket:
            bucket.append(source)
    return Grants(
        **{kind: frozenset(values) for kind, values in names.items()},
        sources={key: tuple(sorted(value)) for key, value in sources.items()},
    )


def _bulk_sql() -> str:
    # The grants query of `_sql` for many users at once: the same joins, with the user id as the first column.
    t = _tables()
    return f"""
WITH g AS (
    SELECT gm.user_id AS uid, gr.id, gr.name FROM {t["membership"]} gm JOIN "{t["group"]}" gr ON gr.id = gm.group_id
    WHERE gm.user_id = ANY(%(users)s)
), r AS (
    SELECT b.user_id AS uid, b.role_id, ro.name AS role_name, NULL::text AS via_group
    FROM {t["binding"]} b JOIN {t["role"]} ro ON ro.id = b.role_id WHERE b.user_id = ANY(%(users)s)
    UNION ALL
    SELECT g.uid, b.role_id, ro.name, g.name
    FROM {t["binding"]} b JOIN {t["role"]} ro ON ro.id = b.role_id JOIN g ON g.id = b.group_id
)
SELECT g.uid, 'groups', g.name, NULL, NULL FROM g
UNION ALL SELECT r.uid, 'roles', r.role_name, NULL, r.via_group FROM r
UNION ALL SELECT r.uid, 'scopes', s.name, r.role_name, r.via_group
    FROM r JOIN {t["role_scopes"]} rs ON rs.role_id = r.role_id JOIN {t["scope"]} s ON s.id = rs.scope_id
UNION ALL SELECT r.uid, 'resources', res.name, r.role_name, r.via_group
    FROM r JOIN {t["role_resources"]} rr ON rr.role_id = r.role_id JOIN {t["resource"]} res ON res.id = rr.resource_id
UNION ALL SELECT r.uid, 'permissions', pres.name || ':' || p.action, r.role_name, r.via_group
    FROM r JOIN {t["role_permissions"]} rp ON rp.role_id = r.role_id
    JOIN {t["permission"]} p ON p.id = rp.permission_id JOIN {t["resource"]} pres ON pres.id = p.resource_id
"""


_BULK_SQL: str | None = None


@tracing.traced("authsec.grants.load_many")
def load_grants_many(user_ids: list[int]) -> dict[int, Grants]:
    """Effective grants of many users of the current tenant in one query (no cache): the same rows
    `load_grants` reads for each, for pages that decide for many users at once (the user × tool matrix)."""
    global _BULK_SQL
    if _BULK_SQL is None:
        _BULK_SQL = _bulk_sql()
    per_user: dict[int, list[tuple[str, str, str | None, str | None]]] = {user_id: [] for user_id in user_ids}
    if user_ids:
        with connection.cursor() as cursor:
            cursor.execute(_BULK_SQL, {"users": list(user_ids)})
            for uid, kind, name, role, group in cursor.fetchall():
                per_user[uid].append((kind, name, role, group))
    return {user_id: _assemble(rows) for user_id, rows in per_user.items()}


# --- Version token and caches ---------------------------------------------------------------------------------

# (schema, user id) → (the version token it was read under, grants): one entry per user, replaced when the version
# changes, so RBAC edits do not pile up entries of versions no request reads again (docs/benchmarks.md, "Memory").
_local: TTLCache[tuple[str, int], tuple[str, Grants]] = TTLCache(LOCAL_MAX)


def current_version() -> str | None:
    """The tenant's grants version token (created on first use); None if Redis is unreachable."""
    try:
        return coherence.version_token(VERSION_KEY)
    except Exception as exc:  # noqa: BLE001 - Redis down: fall back to the database
        logger.warning("RBAC grants cache unavailable (%s); reading grants from the database", type(exc).__name__)
        return None


def bump_version() -> None:
    """Make every cached grant of the current tenant stale, in every process."""
    try:
        # Announced too: MCP endpoint processes mirror this key in memory (authsec_site.lib.coherence).
        coherence.set_and_announce(VERSION_KEY, uuid.uuid4().hex)
    except Exception as exc:  # noqa: BLE001
        # The local TTL bounds how long another process may still use what it cached.
        logger.error("Could not invalidate the RBAC grants cache (%s)", type(exc).__name__)


def effective_grants(user: Any) -> Grants | None:
    """Effective grants of `user` in the current tenant: None for anonymous or inactive users."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    return grants_for_user_id(user.pk)


@tracing.traced("authsec.grants")
def grants_for_user_id(user_id: int) -> Grants:
    version = current_version()
    if version is None:
        metrics.GRANTS_CACHE_MISS.inc()
        return load_grants(user_id)
    key = (connection.schema_name, user_id)
    hit = _local.get(key)
    if hit is not None and hit[0] == version:
        metrics.GRANTS_CACHE_LOCAL.inc()
        return hit[1]
    redis_key = f"rbac:grants:{user_id}:{version}"
    grants = None
    try:
        grants = cache.get(redis_key)
    except Exception:  # noqa: BLE001
        grants = None
    (metrics.GRANTS_CACHE_MISS if grants is None else metrics.GRANTS_CACHE_REDIS).inc()
    if grants is None:
        grants = load_grants(user_id)
        try:
            cache.set(redis_key, grants, timeout=GRANTS_TTL)
        except Exception as exc:  # noqa: BLE001 - caching is an optimisation; the answer is already right
            logger.warning("Could not cache RBAC grants (%s)", type(exc).__name__)
    _local.set(key, (version, grants), LOCAL_TTL)
    return grants


def clear_local_cache() -> None:
    _local.clear()


def known_names() -> dict[str, frozenset[str]]:
    """Every role, group, scope, resource and permission name that exists in the current tenant."""
    return {
        "roles": frozenset(m.Role.objects.values_list("name", flat=True)),
        "groups": frozenset(m.Group.objects.values_list("name", flat=True)),
        "scopes": frozenset(m.Scope.objects.values_list("name", flat=True)),
        "resources": frozenset(m.Resource.objects.values_list("name", flat=True)),
        "permissions": frozenset(
            f"{resource}:{action}" for resource, action in m.Permission.objects.values_list("resource__name", "action")
        ),
    }


def grants_from_claims(claims: dict[str, Any]) -> tuple[Grants, dict[str, list[str]]]:
    """Database-backed validation of claimed names (token claims, simulator input).

    A claim counts only if that name exists in the tenant; returns the grants and the ignored claims.
    """
    existing = known_names()
    kept: dict[str, set[str]] = {}
    ignored: dict[str, list[str]] = {}
    for kind in KINDS:
        values = claims.get(kind) or []
        if isinstance(values, str):
            values = [values]
        claimed = {str(value) for value in values}
        kept[kind] = claimed & existing[kind]
        if claimed - existing[kind]:
            ignored[kind] = sorted(claimed - existing[kind])
    return Grants.of(**kept), ignored
