"""Who is calling, at which endpoint: per-request resolution of tenant, application and bearer token.

Everything here is on the hot path of every MCP request, so it is built to do no database work and no
JWKS fetch in the steady state:
- tenants are cached in process for `TENANT_TTL` seconds (deactivating a tenant takes effect within it, plus
  the moment its re-read takes: on the event loop an expired entry is re-read in the background while requests
  go on with it, for at most `TENANT_STALE_FOR` more seconds);
- an application's settings and `ToolPolicy` rows are cached in process, keyed by a per-tenant version
  token in Redis (`mcp:config_version`) that `mcp_endpoint.signals` replaces after every committed change;
- the user's effective grants come through `rbac.grants` (version token ``rbac:version``);
- JWKS are cached per tenant and refetched only when a token names an unknown ``kid``: at most once per
  `JWKS_REFETCH_INTERVAL`, unless a signing key changed since (the `oauth.issuance` version token moved);
- revocation: DOT stores tokens hashed, so the token endpoint's revocation hook writes
  ``mcp:revoked:<sha256(token)>`` to Redis until the token's expiry (`note_revoked`).
Both version tokens and the revocation marker are read from this process's `mcp_endpoint.mirror` (kept
current by pub/sub announcements of every write), so a request usually makes no Redis round trip at all;
what the mirror does not hold is read in one MGET (`authsec_site.lib.redis`). Every in-process cache here
is an `authsec_site.lib.ttlcache.TTLCache`: bounded, and expiring where an entry must not outlive a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from django.db import close_old_connections, connection

from audit import queued_actor as actor_wire
from authsec_site.lib import coherence, redis, tracing
from authsec_site.lib.ttlcache import TTLCache
from mcp_endpoint import pinning
from mcp_endpoint.mirror import MISSING, Mirror
from mcp_endpoint.registry import registry
from oauth import issuance
from oauth import issuer as issuers
from rbac import principal as rbac_principal
from rbac.engine import Grants, Requirement
from rbac.grants import VERSION_KEY as RBAC_VERSION_KEY
from rbac.grants import current_version, grants_for_user_id, load_grants

logger = logging.getLogger(__name__)
CONFIG_VERSION_KEY = "mcp:config_version"
REVOKED_PREFIX = "mcp:revoked:"
TENANT_TTL = 5.0
TENANT_STALE_FOR = 5.0
JWKS_REFETCH_INTERVAL = 5.0
TENANTS_MAX = 10_000  # tenants (and schemas) whose entries each process keeps
CONFIGS_MAX = 10_000  # applications
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat


class NotFound(Exception):
    """Unknown or inactive tenant or application: the endpoint answers 404."""


class InvalidToken(Exception):
    """A bearer token was presented and is not valid here: 401 with ``error="invalid_token"``."""


@dataclass(frozen=True)
class TenantRef:
    slug: str
    schema_name: str
    tenant: Any


@dataclass(frozen=True)
class AppConfig:
    """An application's endpoint settings and the requirements of the tools it serves (one row each)."""

    slug: str
    name: str
    auth_mode: str
    policies: dict[str, Requirement]
    resource: str  # canonical URL = the `aud` its tokens must carry
    log_arguments: frozenset[str] = frozenset()  # tools whose call arguments go into the audit log
    approvals: frozenset[str] = frozenset()  # tools whose calls wait for a person's approval (`approvals`)
    # Tool pinning (`mcp_endpoint.pinning`): held tools are neither listed nor called; computed at load.
    pins: pinning.PinState = field(default_factory=pinning.PinState, compare=False, repr=False)
    # What tools/list answers, per grant set (`mcp_endpoint.handlers`): derived from this object and the grants,
    # both immutable and replaced on every change, so it never outlives what it was derived from.
    listings: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class Principal(rbac_principal.Principal):
    """`rbac.principal.Principal` (grants, token scopes, the one scope narrowing), plus its audit actor as the MCP
    audit pipe carries it, encoded once per principal (principals are kept across requests, `_principals`)."""

    @cached_property
    def audit_wire(self) -> list[Any]:
        """`audit_actor` as the audit pipe carries it (shared: it is encoded, never changed)."""
        return actor_wire(self.audit_actor)


@dataclass
class RequestAuth:
    """The outcome of `resolve`: where the request goes and who makes it (None = anonymous)."""

    tenant: TenantRef
    app: AppConfig
    principal: Principal | None = None
    token_error: str = ""


# --- Tenants ------------------------------------------------------------------------------------------------

_tenants: TTLCache[str, TenantRef | None] = TTLCache(TENANTS_MAX, TENANT_TTL)  # None: not found


_refreshing: dict[str, Any] = {}  # slug → the task re-reading it (one at a time per tenant)


def _refresh_tenant(slug: str) -> None:
    loop = asyncio.get_running_loop()
    running = _refreshing.get(slug)
    if running is not None and not running.done() and running.get_loop() is loop:
        return  # (a task of a loop that has ended never finishes: it does not count)

    async def refresh() -> None:
        try:
            await sync_to_async(_tenant)(slug, reload=True)
        except NotFound:
            pass  # now cached as not found: the next request answers 404
        except Exception as exc:  # noqa: BLE001 - the sync path retries (and logs) once the grace is over
            logger.warning("Could not re-read tenant %s (%s)", slug, type(exc).__name__)
        finally:
            if _refreshing.get(slug) is task:
                del _refreshing[slug]

    task = _refreshing[slug] = loop.create_task(refresh())


def _tenant(slug: str, *, reload: bool = False) -> TenantRef:
    now = _tenants.clock()
    hit = _tenants.get_entry(slug)
    if reload or hit is None or hit[0] < now:
        from tenants.models import Domain

        close_old_connections()
        connection.set_schema_to_public()
        domain = (
            Domain.objects.select_related("tenant")
            .filter(domain=slug, tenant__is_active=True)
            .exclude(tenant__schema_name="public")
            .first()
        )
        ref = TenantRef(slug, domain.tenant.schema_name, domain.tenant) if domain is not None else None
        _tenants.set(slug, ref, TENANT_TTL)
        hit = (now + TENANT_TTL, ref)
    if hit[1] is None:
        raise NotFound(slug)
    return hit[1]


# --- Application configuration --------------------------------------------------------------------------------

# (schema, application) → (config version token it was read under, settings or None: not found).
_configs: TTLCache[tuple[str, str], tuple[str, AppConfig | None]] = TTLCache(CONFIGS_MAX)


def load_config(tenant: TenantRef, app_slug: str) -> AppConfig | None:
    """An application's endpoint settings and tool requirements, read from the current tenant's database now
    (no cache; None when it does not exist or is inactive)."""
    from rbac.models import Application, ToolPolicy

    app = Application.objects.filter(slug=app_slug, is_active=True).first()
    if app is None:
        return None
    rows = list(ToolPolicy.objects.filter(application=app).select_related("pin"))
    policies = {policy.tool_name: policy.requirement() for policy in rows}
    logged = frozenset(policy.tool_name for policy in rows if policy.log_arguments)
    gated = frozenset(policy.tool_name for policy in rows if policy.needs_approval)
    resource = issuers.mcp_resource(app.slug, tenant.tenant)
    return AppConfig(app.slug, app.name, app.auth_mode, policies, resource, logged, gated, pins=pinning.load(rows))


def bump_config_version() -> None:
    """Make every process reload the current tenant's application settings and tool policies."""
    coherence.set_and_announce(CONFIG_VERSION_KEY, uuid.uuid4().hex)


def _config_version(value: str | None) -> str:
    if value is None:
        cache.add(CONFIG_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        value = cache.get(CONFIG_VERSION_KEY)
    return value


def _stale_pins(config: AppConfig | None) -> bool:
    """The tool registry changed since `config` compared it with the pins (a tool module registered again)."""
    return config is not None and config.pins.generation != registry.generation


def _app(tenant: TenantRef, app_slug: str, version: str) -> AppConfig:
    key = (tenant.schema_name, app_slug)
    hit = _configs.get(key)
    if hit is None or hit[0] != version or _stale_pins(hit[1]):
        close_old_connections()
        hit = _configs.set(key, (version, load_config(tenant, app_slug)))
    if hit[1] is None:
        raise NotFound(app_slug)
    return hit[1]


# --- Signing keys -----------------------------------------------------------------------------------------------

# schema → (monotonic time of the fetch, kid → public key, the tenant's issuance version token read before it).
_jwks: TTLCache[str, tuple[float, dict[str, Any], str | None]] = TTLCache(TENANTS_MAX)


def _keys_version() -> str | None:
    """The current tenant's `oauth.issuance` version token: it moves after every signing-key change, in whichever
    process made it (a rotation on another node, the worker's scheduled one). None when Redis is unreachable."""
    try:
        return coherence.version_token(issuance.VERSION_KEY)
    except Exception:  # noqa: BLE001 - Redis away: the refetch interval alone decides
        return None


def _public_key(schema: str, kid: str) -> Any:
    hit = _jwks.get(schema)
    if hit is not None and kid in hit[1]:
        return hit[1][kid]
    now = time.monotonic()
    version = _keys_version()
    if hit is not None and now - hit[0] < JWKS_REFETCH_INTERVAL and (version is None or version == hit[2]):
        # Fetched moments ago and no key has changed since: do not let kid spraying hit the DB. A key made since
        # (its first tokens arrive within the interval) moved the version: fetch again.
        raise InvalidToken("unknown signing key")
    from oauth.keys import published_keys

    close_old_connections()
    keys = {jwk["kid"]: jwt.PyJWK(jwk).key for jwk in published_keys()}
    _jwks.set(schema, (now, keys, version))
    if kid not in keys:
        raise InvalidToken("unknown signing key")
    return keys[kid]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Digests of the tokens seen lately: a client sends the same token on every request, and hashing it (≈ 1 KB
# with its grant claims) was a visible part of each request's cost. Process memory only, bounded.
_digests: TTLCache[str, str] = TTLCache(20_000, 300.0)  # as many as `_verified` holds, as long (VERIFIED_TTL)


def _cached_digest(token: str) -> str:
    digest = _digests.get(token)
    if digest is None:
        digest = _digests.set(token, token_digest(token))
    return digest


def note_revoked(token_digests: list[tuple[str, int | None]]) -> None:
    """Mark tokens (by SHA-256 of the raw token) revoked in the current tenant until they expire."""
    default_ttl = settings.OAUTH_ACCESS_TOKEN_SECONDS + LEEWAY
    for digest, expires_at in token_digests:
        ttl = default_ttl if expires_at is None else max(int(expires_at - time.time()) + LEEWAY, 1)
        coherence.set_and_announce(REVOKED_PREFIX + digest, 1, timeout=ttl)


# Verified claims by (schema, application, token digest), so a client's repeated requests with one token pay
# the RS256 check once. An entry lives until the token expires, at most VERIFIED_TTL seconds (so a signing key
# withdrawn from the JWKS stops counting soon); revocation is still checked on every request.
VERIFIED_TTL = 300.0
VERIFIED_MAX = 20_000
_verified: TTLCache[tuple[str, str, str], dict[str, Any]] = TTLCache(VERIFIED_MAX)


def _verify_cached(token: str, digest: str, tenant: TenantRef, app: AppConfig) -> dict[str, Any]:
    key = (tenant.schema_name, app.slug, digest)
    claims = _verified.get(key)
    if claims is not None:
        return claims
    claims = _verify(token, tenant, app)
    return _verified.set(key, claims, min(float(claims["exp"]) - time.time(), VERIFIED_TTL))


def _verify(token: str, tenant: TenantRef, app: AppConfig) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    if header.get("alg") != "RS256" or header.get("typ") not in ("at+jwt", "application/at+jwt"):
        raise InvalidToken("not an access token")
    if "crit" in header:
        raise InvalidToken("unsupported critical header")  # we issue none, so none is understood (RFC 7515 §4.1.11)
    # jku, x5u, x5c and jwk headers are never read: the key comes only from this tenant's JWKS, by kid.
    key = _public_key(tenant.schema_name, str(header.get("kid", "")))
    try:
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=app.resource,
            issuer=issuers.issuer_for(tenant.tenant),
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("token not issued for this endpoint") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("token not issued by this tenant") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None


# --- Principals -------------------------------------------------------------------------------------------------

USERS_MAX = 10_000
# (schema, user id) → (the RBAC version token it was read under, (email, is_active, grants) or None: no such user).
# One entry per user, replaced when the version changes: keyed by version too, every RBAC edit left an entry per
# active user that no request would read again, up to USERS_MAX (docs/benchmarks.md, "Memory").
_users: TTLCache[tuple[str, int], tuple[str, tuple[str, bool, Grants] | None]] = TTLCache(USERS_MAX)


def _user(schema: str, user_id: int, rbac_version: str) -> tuple[str, bool, Grants] | None:
    """(email, is_active, effective grants) of a user, cached in process per RBAC version token.

    Every RBAC change and every user save or delete replaces the token (`rbac.signals`), so the next request
    misses; this saves the second Redis read `grants_for_user_id` would make for the token we already hold."""
    hit = _users.get((schema, user_id))
    if hit is not None and hit[0] == rbac_version:
        return hit[1]
    from accounts.models import User

    close_old_connections()
    row = User.objects.filter(pk=user_id).values_list("email", "is_active").first()
    user = None if row is None else (row[0], row[1], grants_for_user_id(user_id))
    _users.set((schema, user_id), (rbac_version, user))
    return user


def _user_uncached(user_id: int) -> tuple[str, bool, Grants] | None:
    from accounts.models import User

    row = User.objects.filter(pk=user_id).values_list("email", "is_active").first()
    return None if row is None else (row[0], row[1], load_grants(user_id))


# The principal of a verified token by (schema, application, token digest), for the RBAC version token it was
# built under, until the token's verified claims expire (`_verified`). A request with the same token and an
# unchanged RBAC version reuses it: no claims parsing, no user lookup, `_user_info` built once. Revocation is
# still checked on every request, before this is consulted.
_principals: TTLCache[tuple[str, str, str], tuple[str, Principal]] = TTLCache(VERIFIED_MAX)


def _finish(
    auth: RequestAuth, token: str, digest: str, revoked: bool, rbac_version: str | None, *, sync: bool
) -> RequestAuth | None:
    """Verify `token` and attach the principal (or `token_error`). With ``sync=False`` (on the event loop)
    nothing may touch the database: returns None when something is not cached yet."""
    tenant, app = auth.tenant, auth.app
    key = (tenant.schema_name, app.slug, digest)
    known = _principals.get(key)
    if known is not None and not revoked and known[0] == rbac_version:
        auth.principal = known[1]
        return auth
    try:
        if not sync and key not in _verified:
            # Verifying needs the signing key; without it cached here, the sync path fetches the JWKS.
            kid = _unverified_kid(token)
            if kid is not None and kid not in _jwks.get(tenant.schema_name, (0.0, {}, None))[1]:
                return None
        claims = _verify_cached(token, digest, tenant, app)
        if revoked:
            raise InvalidToken("token revoked")
        if claims.get("sub") == claims.get("client_id"):  # client credentials: the client acts for itself
            raise InvalidToken("token is not for a user")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise InvalidToken("token is not for a user") from None
        if not sync:
            # One lookup (another thread may clear the dict between two); a cached None means "no such user".
            hit = _users.get((tenant.schema_name, user_id))
            if hit is None or hit[0] != rbac_version:
                return None
            user = hit[1]
        else:
            rbac_version = rbac_version or current_version()
            # Redis unreachable (no version token): read the database and cache nothing.
            user = _user_uncached(user_id) if rbac_version is None else _user(tenant.schema_name, user_id, rbac_version)
        if user is None or not user[1]:
            raise InvalidToken("user is unknown or inactive")
    except InvalidToken as exc:
        auth.token_error = str(exc)
        return auth
    auth.principal = Principal(
        user_id=user_id,
        email=user[0],
        tenant_slug=tenant.slug,
        grants=user[2],
        token_id=str(claims.get("jti", "")),
        client_id=str(claims.get("client_id", "")),
        token_scopes=frozenset(str(claims.get("scope", "")).split()),
    )
    verified = _verified.get_entry(key)
    if rbac_version is not None and verified is not None:  # no version token (Redis down): nothing is kept
        _principals.set(key, (rbac_version, auth.principal), verified[0] - _verified.clock())
    return auth


def _unverified_kid(token: str) -> str | None:
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError:
        return None  # malformed: `_verify` says so without any I/O


@tracing.traced("authsec.token_check.load", attributes=lambda tenant, app, token: _span_attributes(tenant, app))
def resolve(tenant_slug: str, app_slug: str, token: str | None) -> RequestAuth:
    """Resolve one request (sync; run it off the event loop). Raises `NotFound` for unknown endpoints.

    With a token, sets `principal` or `token_error` (the caller decides between anonymous and 401)."""
    tenant = _tenant(tenant_slug)
    connection.set_tenant(tenant.tenant)
    keys = [CONFIG_VERSION_KEY, RBAC_VERSION_KEY]
    digest = token_digest(token) if token else ""
    if token:
        keys.append(REVOKED_PREFIX + digest)
    try:
        values = cache.get_many(keys)
        config_version = _config_version(values.get(CONFIG_VERSION_KEY))
    except Exception as exc:  # noqa: BLE001 - Redis down: read the database, skip the revocation list
        logger.warning("MCP endpoint cache unavailable (%s); reading settings from the database", type(exc).__name__)
        values, config_version = {}, uuid.uuid4().hex  # a fresh version forces a reload
    auth = RequestAuth(tenant, _app(tenant, app_slug, config_version))
    if not token:
        return auth
    revoked = bool(values.get(REVOKED_PREFIX + digest))
    return _finish(auth, token, digest, revoked, values.get(RBAC_VERSION_KEY), sync=True)


# --- Fast path on the event loop ----------------------------------------------------------------------------------

_serializer = RedisSerializer()


_mirror: Mirror | None = None


def mirror() -> Mirror:
    """This process's mirror of the hot-path keys (live once `McpEndpoint.run` has subscribed it)."""
    global _mirror
    if _mirror is None:
        _mirror = Mirror(settings.REDIS_URL, coherence.channel())
    return _mirror


async def _read_redis(keys: tuple[str, ...]) -> list[Any]:
    """The values of raw Redis `keys` (None: absent) in one MGET: while the mirror is not live."""
    return [
        None if value is None else _serializer.loads(value) for value in await redis.async_client().mget(list(keys))
    ]


async def _fill_missing(held: Mirror, keys: tuple[str, ...], values: list[Any]) -> list[Any]:
    """Read the keys the mirror does not hold with one MGET, and keep them in it.

    Keys from index 2 on are revocation markers, for which "absent" is an answer worth keeping; an absent
    version token is created by the sync path, so it is not kept."""
    epoch = held.epoch
    missing = [key for key, value in zip(keys, values, strict=True) if value is MISSING]
    raw = await redis.async_client().mget(missing)
    fetched = {key: None if item is None else _serializer.loads(item) for key, item in zip(missing, raw, strict=True)}
    for index, key in enumerate(keys):
        if values[index] is MISSING:
            values[index] = fetched[key]
            if values[index] is not None or index >= 2:
                held.fill(epoch, key, values[index])
    return values


_key_prefixes: TTLCache[str, str] = TTLCache(TENANTS_MAX)  # schema → its raw cache key prefix
_version_keys: TTLCache[str, tuple[str, str]] = TTLCache(TENANTS_MAX)  # schema → raw keys of its version tokens


def _raw_key(schema: str, key: str) -> str:
    # django_tenants.cache.make_key, with the schema given instead of read from the thread's connection.
    prefix = _key_prefixes.get(schema)
    if prefix is None:
        prefix = _key_prefixes.set(schema, f"{schema}:{cache.key_prefix}:{cache.version}:")
    return prefix + key


_token_keys: TTLCache[tuple[str, str], tuple[str, ...]] = TTLCache(VERIFIED_MAX, VERIFIED_TTL)


def _hot_keys(schema: str, digest: str) -> tuple[str, ...]:
    """The raw keys a request reads: the two version tokens, and the token's revocation marker (with a token).
    Kept per tenant and token digest, like the digests themselves (`_cached_digest`)."""
    if digest:
        keys = _token_keys.get((schema, digest))
        if keys is not None:
            return keys
    versions = _version_keys.get(schema)
    if versions is None:
        versions = _version_keys.set(schema, (_raw_key(schema, CONFIG_VERSION_KEY), _raw_key(schema, RBAC_VERSION_KEY)))
    if not digest:
        return versions
    return _token_keys.set((schema, digest), (*versions, _raw_key(schema, REVOKED_PREFIX + digest)))


def _span_attributes(tenant_slug: str, app_slug: str) -> dict[str, str]:
    return {"authsec.tenant": tenant_slug, "authsec.application": app_slug}  # never the token


@tracing.traced("authsec.token_check", attributes=lambda tenant, app, token: _span_attributes(tenant, app))
async def resolve_cached(tenant_slug: str, app_slug: str, token: str | None) -> RequestAuth | None:
    """`resolve` without leaving the event loop, when everything it needs is already cached in this process.

    Same checks, same Redis values (from the mirror, else one MGET with the async client); returns None on any
    miss so the caller falls back to `resolve` in a thread. Raises `NotFound` only for what `resolve` cached
    as not found."""
    hit = _tenants.get_entry(tenant_slug)
    if hit is None or hit[1] is None:
        return None
    if hit[0] < time.monotonic():
        # Expired: re-read it off the loop while this request goes on with it, so that the requests of the moment
        # do not all take the thread path, each with its own query; unless it is too old for that.
        if hit[0] + TENANT_STALE_FOR < time.monotonic():
            return None
        _refresh_tenant(tenant_slug)
    tenant = hit[1]
    digest = _cached_digest(token) if token else ""
    keys = _hot_keys(tenant.schema_name, digest)
    held = _mirror
    try:
        # The values of those keys: from the mirror (the steady state: no await), else with one MGET.
        if held is not None and held.live:
            values = held.get_many(keys)
            if MISSING in values:
                values = await _fill_missing(held, keys, values)
        else:
            values = await _read_redis(keys)
    except Exception:  # noqa: BLE001 - let the sync path handle (and log) a Redis problem
        return None
    config = _configs.get((tenant.schema_name, app_slug))
    if values[0] is None or config is None or config[0] != values[0] or _stale_pins(config[1]):
        return None
    if config[1] is None:
        raise NotFound(app_slug)
    auth = RequestAuth(tenant, config[1])
    if not token:
        return auth
    return _finish(auth, token, digest, bool(values[2]), values[1], sync=False)
