"""Sign-in through an upstream OpenID provider ("Sign in with Google / GitHub / Custom Logon").

`begin` sends the browser to the upstream's authorization endpoint (code flow, PKCE S256, state and nonce
kept in the session). `complete` checks state and the RFC 9207 `iss`, exchanges the code (client_secret_basic,
secret read from Vault), verifies the ID token against the upstream's JWKS and returns the tenant user whose
address the upstream says it *verified* (created on first sign-in when the provider allows it).
Outbound calls go through `authsec_site.lib.outbound` (non-public addresses refused, no redirects, a timeout and
a size limit); discovery documents and key sets are cached
briefly in Redis (cache keys are per tenant schema).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import jwt
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import services as accounts_services
from accounts.models import User, normalize_email_address
from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import outbound, vault
from authsec_site.lib.jsonbody import JSONBodyError, parse_json
from oauth import issuer as tenant_issuer
from oauth.models import UpstreamProvider

logger = logging.getLogger(__name__)

SESSION_KEY = "oauth_upstream_login"
FLOW_MAX_AGE = 600  # seconds a started sign-in may take at the upstream
CACHE_SECONDS = 300  # discovery documents and key sets
HTTP_TIMEOUT = 5.0
MAX_RESPONSE_BYTES = 512 * 1024
CLOCK_LEEWAY = 60
# Asymmetric algorithms only: never "none", never HS* (which would turn the client secret into a signing key).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class UpstreamError(Exception):
    """A sign-in that cannot continue. The message is for the person signing in; `reason` (a short code)
    and `detail` are for the audit log and the administrator. Neither ever contains a secret or a token."""

    def __init__(self, message: str, *, reason: str, status: int = 400, detail: str = "", email: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status
        self.detail = detail
        self.email = email


@dataclass(frozen=True)
class UpstreamLogin:
    user: User
    next_url: str
    created: bool


# --- URLs -------------------------------------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, what: str = "URL") -> str:
    """An upstream URL must be http(s), without credentials or fragment; with DEBUG off, https unless loopback."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamError(f"The {what} must be an absolute http(s) URL.", reason="bad_url", detail=url[:200])
    if parts.username or parts.password or parts.fragment:
        raise UpstreamError(
            f"The {what} must not contain credentials or a fragment.", reason="bad_url", detail=parts.hostname
        )
    if parts.scheme != "https" and not settings.DEBUG and not is_loopback_host(parts.hostname):
        raise UpstreamError(
            f"The {what} must use https (plain http is accepted only for loopback addresses or with DEBUG on).",
            reason="insecure_url",
            detail=url[:200],
        )
    return url


def redirect_uri(provider: UpstreamProvider) -> str:
    """The callback to register at the upstream: <AUTHSEC_PUBLIC_URL>/t/<tenant>/accounts/upstream/<slug>/callback."""
    return f"{tenant_issuer.tenant_base()}/accounts/upstream/{provider.slug}/callback"


def safe_next(request: HttpRequest, candidate: str | None) -> str:
    """`candidate` when it is a relative path inside this tenant (no host, no scheme, no dot segments),
    else the tenant's default landing page."""
    prefix = f"/t/{request.tenant.slug}/"  # type: ignore[attr-defined]
    default = prefix  # the tenant's home page (`tenant-home`), which sends each user where they belong
    if not candidate:
        return default
    parts = urlsplit(candidate)
    segments = unquote(parts.path).split("/")
    if (
        url_has_allowed_host_and_scheme(candidate, allowed_hosts=None)
        and not parts.scheme
        and not parts.netloc
        and parts.path.startswith(prefix)
        and "." not in segments
        and ".." not in segments
        and "\\" not in candidate
    ):
        return candidate
    return default


# --- HTTP -------------------------------------------------------------------------------------------------------


def _unavailable(provider: UpstreamProvider, reason: str, detail: str, status: int = 502) -> UpstreamError:
    return UpstreamError(
        f"Sign-in with {provider.name} is not available right now. Try again later; if it keeps failing, "
        "tell an administrator (the details are in the audit log).",
        reason=reason,
        status=status,
        detail=detail,
    )


def _call(
    provider: UpstreamProvider,
    method: str,
    url: str,
    *,
    what: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One JSON request to the upstream through the guarded door (`authsec_site.lib.outbound`: public addresses
    only, no redirects, a timeout, at most MAX_RESPONSE_BYTES)."""
    try:
        check_url(url, what=what)
    except UpstreamError as exc:
        raise _unavailable(provider, exc.reason, f"{what}: {exc.message}") from None
    host = urlsplit(url).netloc
    try:
        response = outbound.fetch(
            url,
            method=method,
            data=data,
            headers={"Accept": "application/json", **(headers or {})},
            max_bytes=MAX_RESPONSE_BYTES,
            timeout=HTTP_TIMEOUT,
        )
    except outbound.FetchError as exc:
        reason = {"response_too_large": "upstream_response_too_large", "blocked_address": "upstream_blocked_address"}
        raise _unavailable(provider, reason.get(exc.reason, "upstream_unreachable"), f"{what}: {exc.message}") from None
    status, body = response.status, response.body
    try:
        payload = parse_json(body, max_bytes=MAX_RESPONSE_BYTES) if body else {}
    except JSONBodyError:  # not JSON, or nested/keyed past the limits: no RecursionError from a hostile upstream
        payload = None
    if not isinstance(payload, dict):
        raise _unavailable(provider, "upstream_bad_response", f"{what} at {host}: HTTP {status}, not a JSON object")
    return status, payload


def _cache_key(kind: str, url: str) -> str:
    return f"oauth-upstream:{kind}:{hashlib.sha256(url.encode()).hexdigest()[:40]}"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def discover(provider: UpstreamProvider) -> dict[str, Any]:
    """The upstream's OpenID discovery document, which must name exactly the configured issuer (cached briefly)."""
    key = _cache_key("discovery", provider.issuer)
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        check_url(provider.issuer, what="issuer URL")
    except UpstreamError as exc:
        raise _unavailable(provider, exc.reason, exc.message) from None
    status, doc = _call(provider, "GET", discovery_url(provider.issuer), what="discovery document")
    if status != 200:
        raise _unavailable(provider, "discovery_failed", f"discovery document: HTTP {status}")
    if doc.get("issuer") != provider.issuer:
        raise _unavailable(
            provider,
            "issuer_mismatch",
            f"discovery names issuer {str(doc.get('issuer'))[:200]!r}, configured {provider.issuer!r}",
        )
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = doc.get(field)
        if not isinstance(value, str):
            raise _unavailable(provider, "discovery_incomplete", f"discovery document has no {field}")
        try:
            check_url(value, what=field)
        except UpstreamError as exc:
            raise _unavailable(provider, exc.reason, f"{field}: {exc.message}") from None
    cache.set(key, doc, CACHE_SECONDS)
    return doc


def forget(provider_issuer: str) -> None:
    """Drop the cached discovery document of an issuer (after an administrator changed a provider)."""
    cache.delete(_cache_key("discovery", provider_issuer))


def _key_set(provider: UpstreamProvider, doc: Mapping[str, Any], *, refresh: bool = False) -> list[dict[str, Any]]:
    url = doc["jwks_uri"]
    key = _cache_key("jwks", url)
    if not refresh:
        cached = cache.get(key)
        if cached is not None:
            return cached
    status, body = _call(provider, "GET", url, what="key set")
    keys = body.get("keys")
    if status != 200 or not isinstance(keys, list):
        raise _unavailable(provider, "jwks_failed", f"key set: HTTP {status}")
    keys = [k for k in keys if isinstance(k, dict)]
    cache.set(key, keys, CACHE_SECONDS)
    return keys


# --- The flow ---------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def begin(request: HttpRequest, provider: UpstreamProvider, next_url: str) -> str:
    """Remember a new sign-in attempt in the session and return the upstream authorization URL."""
    doc = discover(provider)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    # One attempt per session: a second "Sign in with…" replaces the first.
    request.session[SESSION_KEY] = {
        "provider": provider.slug,
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": next_url,
        "started": int(time.time()),
    }
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri(provider),
        "scope": provider.scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }
    return _with_query(doc["authorization_endpoint"], params)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def complete(request: HttpRequest, provider: UpstreamProvider, params: Mapping[str, str]) -> UpstreamLogin:
    """Check the upstream's answer, redeem the code and return the tenant user to sign in.

    The pending attempt is taken out of the session first, so a callback URL works at most once."""
    pending = request.session.pop(SESSION_KEY, None)
    if not isinstance(pending, dict) or pending.get("provider") != provider.slug:
        raise UpstreamError(
            "This sign-in has expired or was already used. Start again from the sign-in page.",
            reason="no_pending_sign_in",
        )
    if not _same(str(params.get("state") or ""), pending["state"]):
        raise UpstreamError(
            "This sign-in answer does not belong to your browser session, so it was refused. Start again.",
            reason="state_mismatch",
        )
    if time.time() - pending["started"] > FLOW_MAX_AGE:
        raise UpstreamError("This sign-in took too long and has expired. Start again.", reason="expired")
    doc = discover(provider)
    iss = params.get("iss")
    if iss is not None and iss != provider.issuer:
        raise UpstreamError(
            "The sign-in answer came from a different provider than expected, so it was refused.",
            reason="iss_mismatch",
            detail=str(iss)[:200],
        )
    if iss is None and doc.get("authorization_response_iss_parameter_supported") is True:
        raise UpstreamError(
            "The sign-in answer did not say which provider sent it, so it was refused.", reason="iss_missing"
        )
    if params.get("error"):
        error = "".join(ch for ch in str(params["error"])[:64] if ch.isalnum() or ch == "_")
        raise UpstreamError(
            f"{provider.name} did not sign you in ({error or 'error'}).",
            reason="upstream_refused",
            status=403,
            detail=error,
        )
    code = params.get("code")
    if not code:
        raise UpstreamError("The sign-in answer has no authorization code.", reason="code_missing")
    tokens = exchange_code(provider, doc, code=code, verifier=pending["verifier"])
    claims = verified_id_token_claims(provider, doc, tokens["id_token"], nonce=pending["nonce"])
    email = check_identity_claims(claims, provider)
    user, created = find_or_create_user(provider, email, claims)
    return UpstreamLogin(user=user, next_url=safe_next(request, pending.get("next")), created=created)


def client_secret(provider: UpstreamProvider) -> str:
    """The provider's client secret, from the Vault version the row records."""
    try:
        data, _version = vault.kv_read(provider.vault_path, provider.secret_version)
    except vault.VaultError as exc:
        raise _unavailable(provider, "vault_unavailable", str(exc), status=503) from None
    return str(data.get("client_secret") or "")


def exchange_code(provider: UpstreamProvider, doc: Mapping[str, Any], *, code: str, verifier: str) -> dict[str, Any]:
    """Redeem the code at the token endpoint with PKCE and client_secret_basic (client_secret_post only when the
    upstream advertises post but not basic)."""
    secret = client_secret(provider)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(provider),
        "code_verifier": verifier,
    }
    headers: dict[str, str] = {}
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in methods and "client_secret_post" in methods:
        data.update(client_id=provider.client_id, client_secret=secret)
    else:
        # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        pair = f"{quote(provider.client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    status, body = _call(provider, "POST", doc["token_endpoint"], what="token endpoint", data=data, headers=headers)
    if status != 200 or not isinstance(body.get("id_token"), str):
        error = str(body.get("error") or f"HTTP {status}")[:64]
        raise UpstreamError(
            f"{provider.name} did not accept the sign-in. Start again.",
            reason="token_exchange_failed",
            status=502,
            detail=error if status != 200 else "no id_token in the token response",
        )
    return body


def _signing_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    candidates = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    return candidates[0] if len(candidates) == 1 else None


def verify_id_token(
    token: str,
    *,
    keys: list[dict[str, Any]],
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: list[str] | None = None,
) -> dict[str, Any]:
    """Verify an ID token (signature by one of `keys`, iss, aud, exp, iat, nonce, azp); returns its claims.

    Raises `UpstreamError` (reason "id_token_invalid"), or `LookupError` when no key has the token's kid."""

    def invalid(detail: str) -> UpstreamError:
        return UpstreamError(
            "The provider's answer could not be verified, so it was refused.",
            reason="id_token_invalid",
            status=502,
            detail=detail,
        )

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise invalid("not a JWT") from None
    alg = header.get("alg")
    allowed = [a for a in (algorithms or ["RS256"]) if a in SIGNING_ALGORITHMS]
    if alg not in allowed:
        raise invalid(f"algorithm {str(alg)[:20]!r} not accepted")
    jwk = _signing_key(keys, header.get("kid"), alg)
    if jwk is None:
        raise LookupError(header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            jwt.PyJWK(jwk, algorithm=alg),
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=CLOCK_LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise invalid(type(exc).__name__) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise invalid("several audiences and azp is not our client")
    if not _same(str(claims.get("nonce") or ""), nonce):
        raise invalid("nonce mismatch")
    return claims


def verified_id_token_claims(
    provider: UpstreamProvider, doc: Mapping[str, Any], token: str, *, nonce: str
) -> dict[str, Any]:
    """`verify_id_token` with the upstream's key set, fetched again once when the kid is new (key rotation)."""
    algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    for refresh in (False, True):
        keys = _key_set(provider, doc, refresh=refresh)
        try:
            return verify_id_token(
                token,
                keys=keys,
                issuer=provider.issuer,
                client_id=provider.client_id,
                nonce=nonce,
                algorithms=algorithms,
            )
        except LookupError:
            continue
    raise UpstreamError(
        "The provider's answer could not be verified, so it was refused.",
        reason="id_token_invalid",
        status=502,
        detail="no key in the upstream key set matches the token",
    )


def check_identity_claims(claims: Mapping[str, Any], provider: UpstreamProvider) -> str:
    """The normalised email of verified ID-token claims: present, well-formed, verified, in an allowed domain."""
    email = normalize_email_address(str(claims.get("email") or ""))
    try:
        validate_email(email)
    except ValidationError:
        raise UpstreamError(
            f"{provider.name} did not share an email address, which is needed to sign you in here. "
            "Allow access to your email address and try again.",
            reason="email_missing",
            status=403,
        ) from None
    if claims.get("email_verified") not in (True, "true"):
        raise UpstreamError(
            f"{provider.name} has not verified the email address {email}, so it cannot be used to sign in here. "
            f"Verify it at {provider.name} and try again.",
            reason="email_unverified",
            status=403,
            email=email,
        )
    if not provider.allows_email_domain(email):
        raise UpstreamError(
            f"Accounts with an address at {email.rpartition('@')[2]} cannot sign in with {provider.name} here.",
            reason="email_domain_not_allowed",
            status=403,
            email=email,
        )
    return email


def find_or_create_user(provider: UpstreamProvider, email: str, claims: Mapping[str, Any]) -> tuple[User, bool]:
    """The tenant user with this (verified) email; created with no password when the provider allows it."""
    created = False
    user = User.objects.filter(email=email).first()
    if user is None:
        if not provider.auto_create_users:
            tenant_name = getattr(connection.tenant, "name", "this organisation")
            raise UpstreamError(
                f"There is no account for {email} at {tenant_name}. Ask an administrator to add you.",
                reason="no_account",
                status=403,
                email=email,
            )
        try:
            user = User(email=email, full_name=str(claims.get("name") or "")[:200])
            user.set_unusable_password()
            user.full_clean(exclude=["password"])
            user = accounts_services.save_user.nested(
                user,
                actor=Actor(AuditEvent.ActorType.SYSTEM, provider.slug, f"upstream:{provider.slug}"),
                data={"email": email, "via": f"upstream:{provider.slug}", "subject": str(claims.get("sub"))},
            )
            created = True
        except (IntegrityError, ValidationError):
            # The same person finished a second sign-in at the same moment: use the row it created.
            user = User.objects.get(email=email)
    if not user.is_active:
        raise UpstreamError(f"The account {email} is disabled here.", reason="inactive_user", status=403, email=email)
    return user, created
