"""The tenant-aware OAuth2 validator: JWT access tokens, known resources only, OIDC claims, audit."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider import cimd
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
    refresh_token_expire_timedelta,
    revoke_access_token,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

import audit
from audit import context as audit_context
from audit.models import AuditEvent
from audit.recorder import Actor, as_actor
from oauth import issuance, issuer, refresh, token_rows, tokens
from oauth.models import Client, ResourceServer
from oauth.scopes import granted_scopes
from oauth.signals import access_token_digests, token_revoked
from rbac.models import Application

logger = logging.getLogger(__name__)
Grant = get_grant_model()
AccessToken = get_access_token_model()
IDToken = get_id_token_model()
RefreshToken = get_refresh_token_model()


class _RefreshTokenUsed(Exception):  # noqa: N818 - not an error of the caller's: a race lost, reported as reuse
    """Raised inside the token transaction when the refresh token being rotated was used meanwhile."""

    def __init__(self, token: Any) -> None:
        super().__init__()
        self.token = token


_OWN_STORAGE_GRANTS = frozenset({"authorization_code", "refresh_token", "client_credentials"})


def _lean_refresh() -> bool:
    """Whether this server's own refresh path applies (`validate_refresh_token`, `_store_tokens`): the
    configuration it is written for, rotation with reuse protection and no grace period (settings.py). Any other
    configuration takes django-oauth-toolkit's path."""
    return (
        bool(oauth2_settings.ROTATE_REFRESH_TOKEN)
        and bool(oauth2_settings.REFRESH_TOKEN_REUSE_PROTECTION)
        and not oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS
    )


def hosted_resources() -> frozenset[str]:
    """The MCP endpoints of this tenant's active applications, kept per process until an application
    changes (`oauth.issuance`)."""
    return issuance.cached("hosted_resources", _load_hosted_resources)


def _load_hosted_resources() -> frozenset[str]:
    slugs = Application.objects.filter(is_active=True).values_list("slug", flat=True)
    return frozenset(issuer.mcp_resource(slug) for slug in slugs)


def unknown_resources(uris: list[str]) -> list[str]:
    """Of `uris`, those this tenant issues no tokens for (RFC 8707): not the MCP endpoint of an active
    application, nor an active registered resource server (the SDK's runtime API, `oauth.resource_servers`,
    read from the database each time)."""
    rest = [uri for uri in uris if uri not in hosted_resources()]
    if not rest:
        return []
    registered = set(
        ResourceServer.objects.filter(is_active=True, resource_uri__in=rest).values_list("resource_uri", flat=True)
    )
    return [uri for uri in rest if uri not in registered]


def unknown_resource_error(uri: str, **kwargs: Any) -> errors.CustomOAuth2Error:
    return errors.CustomOAuth2Error(
        error="invalid_target",
        description=f"Unknown resource: {uri}. Tokens are issued for this tenant's MCP endpoints and resource servers.",
        **kwargs,
    )


def _client_actor(request: Any) -> Actor:
    client = getattr(request, "client", None)
    return Actor("client", getattr(client, "client_id", "") or "", getattr(client, "name", "") or "")


class TenantOAuth2Validator(OAuth2Validator):
    # Custom ID-token / userinfo claims are dropped by DOT unless mapped to a scope here.
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "email": "email",
        "email_verified": "email",
        "name": "profile",
        "tenant_id": "openid",
    }

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "name": user.get_full_name(),
            "tenant_id": connection.tenant.slug,
        }

    def get_oidc_issuer_endpoint(self, request: Any) -> str:
        return issuer.issuer_for()

    def validate_jwt_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        # With OIDC on, oauthlib treats any JWT-looking bearer as an ID token; ours are access tokens.
        return self.validate_bearer_token(token, scopes, request)

    def validate_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        """DOT's check (stored, unexpired, right resource), and the token's user must still be active.

        Deactivation deletes the user's tokens (`accounts.signals`); this refuses one that was missed (e.g. a
        bulk ``update(is_active=False)``) at no extra query: DOT loads the user with the token."""
        if not super().validate_bearer_token(token, scopes, request):
            return False
        user = getattr(request, "user", None)
        if user is not None and not user.is_active:
            request.user = None
            request.oauth2_error = {"error": "invalid_token", "error_description": "The access token is invalid."}
            return False
        return True

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        # oauthlib asks this while it validates the authorization request, before the consent page. DOT refuses
        # "plain" only when it stores the code (after consent); refuse it here already (RFC 7636 §4.4.1: an
        # unsupported method is invalid_request, sent back to the client). No method means "plain" (§4.3).
        if request.code_challenge is not None and (request.code_challenge_method or "plain") != "S256":
            raise errors.UnsupportedCodeChallengeMethodError(
                description='Unsupported code_challenge_method; use "S256".', request=request
            )
        return super().is_pkce_required(client_id, request)

    # --- The client of a token request, kept per process -------------------------------------------------------------

    def _load_application(self, client_id: Any, request: Any) -> Any:
        """DOT's lookup of the request's client, from this process's copy of the client's row while the tenant's
        issuance version holds (`oauth.issuance`: any save or delete of a client moves it, here at once and on every
        node by the next request). A fresh instance each time, so nothing is shared between requests. Unknown ids,
        malformed ones and a client already on the request take DOT's path (which also resolves CIMD ids on first
        sight); a cached CIMD client whose metadata went stale is fetched again, as DOT does."""
        if request.client or not isinstance(client_id, str) or not client_id or "\x00" in client_id:
            return super()._load_application(client_id, request)
        row = issuance.cached(f"client:{client_id}", lambda: _client_row(client_id), keep_none=False)
        if row is None:
            return super()._load_application(client_id, request)
        client = cimd.refresh_if_stale(Client.from_db(connection.alias, _CLIENT_FIELDS, row), request=request)
        if not client.is_usable(request):
            return None
        request.client = client
        return client

    # --- Held clients: a clear refusal instead of a bare invalid_client ----------------------------------------------

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        if super().authenticate_client(request, *args, **kwargs):
            return True
        self._refuse_held_client(request)
        return False

    def authenticate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        if super().authenticate_client_id(client_id, request, *args, **kwargs):
            return True
        self._refuse_held_client(request)
        return False

    def _refuse_held_client(self, request: Any) -> None:
        """A pending or rejected client is told so (`invalid_client` with the reason), as the authorization page
        tells its user. A confidential client must prove its secret first; anyone else gets the bare error."""
        client_id, secret = self._presented_credentials(request)
        if not client_id or "\x00" in client_id:
            return
        held = Client.objects.filter(client_id=client_id).exclude(status=Client.Status.ACTIVE).first()
        if held is None:
            return
        if held.client_type == Client.CLIENT_CONFIDENTIAL and not self._check_secret(secret or "", held.client_secret):
            return
        description = _error_text(held.refusal(connection.tenant.name) or "")
        raise errors.InvalidClientError(description=description, request=request)

    def _presented_credentials(self, request: Any) -> tuple[str | None, str | None]:
        """(client_id, client_secret) from HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the body."""
        auth = self._extract_basic_auth(request)
        if auth:
            try:
                client_id, secret = map(unquote_plus, base64.b64decode(auth).decode("utf-8").split(":", 1))
            except (ValueError, UnicodeDecodeError):
                return None, None
            return client_id, secret
        return getattr(request, "client_id", None), getattr(request, "client_secret", None)

    def validate_user(self, username: str, password: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        # The password grant is off (RFC 9700 §2.4), but oauthlib checks the password *before* it asks whether
        # the client may use the grant: a right password answered unauthorized_client, a wrong one invalid_grant.
        # That made the token endpoint an unthrottled password oracle for anyone knowing a public client_id.
        raise errors.UnsupportedGrantTypeError(request=request)

    def _check_known_resources(self, request: Any, resources: list[str]) -> None:
        if not resources:
            return
        unknown = unknown_resources(resources)
        if unknown:
            raise unknown_resource_error(unknown[0], request=request)

    def save_authorization_code(
        self, client_id: str, code: dict[str, Any], request: Any, *args: Any, **kwargs: Any
    ) -> None:
        resources = getattr(request, "resource", None) or []
        if isinstance(resources, str):
            resources = resources.split()
        self._check_known_resources(request, list(resources))
        # The code carries only what its user may be granted (a scope posted past the consent page included).
        request.scopes = granted_scopes(request.scopes or [], request.user)
        super().save_authorization_code(client_id, code, request, *args, **kwargs)

    def _mint_access_token(self, token: dict[str, Any], request: Any) -> dict[str, Any]:
        """Replace the opaque token oauthlib generated with our signed JWT (once per request); its claims."""
        minted = getattr(request, "authsec_access_token", None)
        if minted is not None and minted[0] == token["access_token"]:
            return minted[1]
        # Resolve the audience first (request param, grant or refresh token).
        self._check_and_set_request_resource(request)
        self._check_known_resources(request, request.resource)
        user = request.user if request.grant_type != "client_credentials" else None
        audience = list(request.resource) or [issuer.issuer_for()]
        claims = tokens.access_token_claims(
            user=user, client_id=request.client.client_id, scopes=list(request.scopes or []), audience=audience
        )
        token["access_token"] = tokens.mint(claims)
        # One granted scope: the token response, the stored token (and so the management API and introspection)
        # and the JWT claim all say what access_token_claims granted (RFC 6749 §5.1: `scope` when it differs).
        request.scopes = claims["scope"].split()
        token["scope"] = claims["scope"]
        request.authsec_access_token = (token["access_token"], claims)
        return claims

    def finalize_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: Any
    ) -> str:
        # oauthlib hashes the access token into `at_hash` before it calls save_token, where ours becomes a JWT:
        # mint it here first, so that `at_hash` describes the token the client receives (OIDC Core §3.1.3.6).
        if "access_token" in token:
            self._mint_access_token(token, request)
            if "at_hash" in id_token:
                id_token["at_hash"] = _at_hash(token["access_token"])
        if request.client.algorithm == Client.RS256_ALGORITHM:  # every client (a database constraint)
            signed = self._sign_id_token(id_token, token, token_handler, request)
        else:
            signed = super().finalize_id_token(id_token, token, token_handler, request)
        request.authsec_id_token = (signed, request.id_token)  # the row just stored for this JWT
        return signed

    def _sign_id_token(self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: Any) -> str:
        """django-oauth-toolkit's `finalize_id_token` (the same claims, header and row), signed with PyJWT and the
        private key object kept per process (`oauth.tokens.sign_id_token`, as the access token is) instead of
        jwcrypto, which rebuilt its header registry and the key's thumbprint for every token."""
        claims, expires = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce  # oauthlib #746, as DOT does
        signed = tokens.sign_id_token(id_token)
        row = self._save_id_token(id_token["jti"], request, expires)  # at the token endpoint: stored with the tokens
        request.access_token = row
        request.id_token = row
        return signed

    def _save_id_token(self, jti: Any, request: Any, expires: Any, *args: Any, **kwargs: Any) -> Any:
        """At the token endpoint the ID token's row is stored with the tokens, in their transaction
        (`_save_bearer_token`), rather than in one of its own just before."""
        if request.grant_type not in ("authorization_code", "refresh_token"):
            return super()._save_id_token(jti, request, expires, *args, **kwargs)
        pending = IDToken(
            user=request.user,
            scope=request.scope or " ".join(request.scopes),
            expires=expires,
            jti=jti,
            application=request.client,
        )
        request.authsec_pending_id_token = pending
        return pending

    def save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        try:
            if self._own_storage(token, request) and audit.pipeline_running():
                # One statement writes every row (and uses up a rotated refresh token): atomic on its own, so no
                # transaction is opened around it (BEGIN and COMMIT were two round trips of five); the audit event
                # goes to the pipeline once it has committed.
                self._save_bearer_token(token, request, *args, **kwargs)
            else:
                super().save_bearer_token(token, request, *args, **kwargs)  # DOT's transaction around it
        except _RefreshTokenUsed as used:
            # The transaction has rolled back (nothing of this request is stored): the refresh token was used by a
            # racing request between its validation and its rotation. That is a reuse, answered as one.
            self._refresh_token_reused(request, used.token, request.client)
            raise errors.InvalidGrantError(request=request) from None

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        # The JWT replaces the opaque token before it is stored (as a hash).
        user = request.user if request.grant_type != "client_credentials" else None
        claims = self._mint_access_token(token, request)
        if self._own_storage(token, request):
            self._store_tokens(token, request)
        else:
            pending = getattr(request, "authsec_pending_id_token", None)
            if pending is not None and pending.pk is None:
                pending.save()
            super()._save_bearer_token(token, request, *args, **kwargs)
        if request.grant_type == "authorization_code":
            self._remember_code_tokens(token, request)
        _audit_issued(
            user or _client_actor(request),
            "oauth.token_refreshed" if request.grant_type == "refresh_token" else "oauth.token_issued",
            {
                "client_id": request.client.client_id,
                "grant_type": request.grant_type,
                "scope": claims["scope"],
                "aud": claims["aud"],
                "jti": claims["jti"],
            },
        )

    # --- Storing the issued tokens ------------------------------------------------------------------------------
    # For the three grants this server issues tokens for, in the configuration it is written for (`_lean_refresh`),
    # the rows are written here: the ID token, access token and refresh token in one statement (`oauth.token_rows`),
    # whose guard is the single use of a rotated refresh token (`oauth.refresh`). django-oauth-toolkit's
    # `_save_bearer_token` took one statement per row, each built through the ORM. Anything else takes DOT's path.

    def _own_storage(self, token: dict[str, Any], request: Any) -> bool:
        if not _lean_refresh() or request.grant_type not in _OWN_STORAGE_GRANTS:
            return False
        signed, _row = getattr(request, "authsec_id_token", (None, None))
        if token.get("id_token") and signed != token["id_token"]:
            return False  # an ID token this validator did not sign and keep the row of
        if request.grant_type == "refresh_token":
            return bool(token.get("refresh_token")) and isinstance(
                getattr(request, "refresh_token_instance", None), RefreshToken
            )
        return True

    def _store_tokens(self, token: dict[str, Any], request: Any) -> None:
        """DOT's `_save_bearer_token` for these grants: the same checks and rows, in one statement. A rotated refresh
        token's single use is the statement's guard (`oauth.refresh.consume_guard`): `_RefreshTokenUsed`, and
        nothing written, when a racing request used it first."""
        if "scope" not in token:
            raise errors.FatalClientError("Failed to renew access token: missing scope")
        self._check_and_set_request_resource(request)  # RFC 8707: narrowed to the code's or refresh token's resources
        now = timezone.now()
        expires = now + timedelta(seconds=token.get("expires_in", oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS))
        if request.grant_type == "client_credentials":
            request.user = None
        previous = request.refresh_token_instance if request.grant_type == "refresh_token" else None
        _signed, id_row = getattr(request, "authsec_id_token", (None, None))
        access = self._access_token_row(expires, request, token, id_row, previous)
        rows = [id_row, access] if id_row is not None and id_row.pk is None else [access]
        refresh_row = None
        if token.get("refresh_token"):
            refresh_row = self._refresh_token_row(request, token["refresh_token"], access, previous)
            rows.append(refresh_row)
        token_rows.announce(rows)
        if previous is None:
            token_rows.insert_linked(rows)
        else:  # the single use and the new rows: one statement, rows written only if it used the token
            answer = token_rows.insert_linked(rows, refresh.consume_guard(previous, now=now))
            if not refresh.consumed(previous, answer, now=now):
                raise _RefreshTokenUsed(previous)
        request.authsec_created = {"access": access, **({"refresh": refresh_row} if refresh_row is not None else {})}

    def _access_token_row(self, expires: Any, request: Any, token: Any, id_row: Any, previous: Any) -> Any:
        """A new, unsaved access token row, as DOT's `_create_access_token` builds it, linked to the ID token row
        `finalize_id_token` kept for this JWT (DOT would verify the JWT it has just signed and read the row back)."""
        row = AccessToken(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=id_row,
            application=request.client,
            source_refresh_token=previous,
            resource=getattr(request, "resource", []),  # RFC 8707
        )
        self._set_token_value(row, token["access_token"])
        return row

    def _refresh_token_row(self, request: Any, value: str, access: Any, previous: Any) -> Any:
        """A new, unsaved refresh token row, as DOT's `_create_refresh_token` builds it: a rotated one stays in its
        family, a first one starts a family."""
        row = RefreshToken(
            user=request.user,
            application=request.client,
            access_token=access,
            token_family=previous.token_family if previous is not None else uuid.uuid4(),
            resource=getattr(request, "resource", []),  # RFC 8707
        )
        self._set_token_value(row, value)
        return row

    def revoke_token(self, token: str, token_type_hint: Any, request: Any, *args: Any, **kwargs: Any) -> None:
        # The layers above learn of it through `token_revoked` (the MCP endpoint's offline token check); the
        # digests are read before DOT deletes the rows.
        digests = access_token_digests(token)
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        token_revoked.send(sender=type(self), digests=digests)
        audit.record(_client_actor(request), "oauth.token_revoked", data={"token_type_hint": token_type_hint or ""})

    # --- Refresh tokens: validation and rotation ---------------------------------------------------------------------
    # With rotation, reuse protection and no grace period (settings.py), a refresh token is good for exactly one use.
    # django-oauth-toolkit's path cost 21 statements a refresh (re-reads and locks, the user and the client read
    # lazily, rotation through `RefreshToken.revoke()` and Django's collector); this one makes the same checks with
    # one read (the token with its access token and user) and one statement for the single use (`oauth.refresh`).
    # docs/benchmarks.md "Token endpoint" lists what each check is and where it is tested.

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        if not _lean_refresh():
            return self._dot_validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
        # Several rows may share a checksum (DOT's uniqueness is (token_checksum, revoked)): the unused one first.
        rt = token_rows.select_linked(
            RefreshToken, "token_checksum", checksum, related=("access_token", "user"), newest_first="revoked"
        )
        if rt is None:
            return False
        if rt.revoked is not None:
            # Used (rotated) or revoked before: with no grace period, presenting it again is a reuse (RFC 9700
            # §4.14.2), whichever client presents it. The whole family is revoked.
            self._refresh_token_reused(request, rt, client)
            return False
        if rt.access_token is None:
            return False  # its access token was deleted (revoked): nothing is left to refresh
        lifetime = refresh_token_expire_timedelta()
        if lifetime and rt.access_token.expires + lifetime <= timezone.now():
            return False  # expired: REFRESH_TOKEN_EXPIRE_SECONDS after its access token
        if client is None or rt.application_id != client.pk:
            return False  # another client's token
        if rt.user is not None and not rt.user.is_active:
            return False  # an inactive user gets no new tokens
        request.user = rt.user
        request.refresh_token = refresh_token
        request.refresh_token_instance = rt  # get_original_scopes and the rotation read it, without a query
        return True

    def _refresh_token_reused(self, request: Any, rt: Any, client: Any) -> None:
        """A used or revoked refresh token presented again: its family is revoked (the rotated tokens issued from
        it too), and the reuse audited, in one transaction."""
        if not rt.token_family:
            return
        with transaction.atomic():
            RefreshToken.revoke_family(rt.token_family)
            self._audit_refresh_reuse(request, rt, client)

    def _audit_refresh_reuse(self, request: Any, rt: Any, client: Any) -> None:
        audit.record(
            _client_actor(request),
            "oauth.refresh_reuse_detected",
            outcome="deny",
            data={
                "client_id": getattr(client, "client_id", "") or "",
                "family": str(rt.token_family),
                "user_id": rt.user_id,
            },
        )

    def _dot_validate_refresh_token(
        self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """django-oauth-toolkit's validation (any other refresh configuration), with the same two additions."""
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        if valid and request.user is not None and not request.user.is_active:
            return False  # invalid_grant: an inactive user gets no new tokens
        if not valid:
            checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
            rt = RefreshToken.objects.filter(token_checksum=checksum).first()
            if rt is not None and rt.revoked is not None and rt.token_family:
                # DOT has just revoked the whole family (REFRESH_TOKEN_REUSE_PROTECTION).
                self._audit_refresh_reuse(request, rt, client)
        return valid

    # --- The exchanged code's grant, read once per token request ------------------------------------------------
    # oauthlib and DOT ask for it up to six times in one exchange (the code, the redirect URI, the PKCE challenge
    # and its method, the scopes, the nonce); one read, with its user, serves them all.

    def _code_grant(self, code: str, request: Any) -> Any:
        memo = getattr(request, "authsec_grant", None)
        if memo is None or memo[0] != code:
            memo = (code, token_rows.select_linked(Grant, "code", code, related=("user",)))
            request.authsec_grant = memo
        return memo[1]

    def _client_grant(self, code: str, client: Any, request: Any) -> Any:
        grant = self._code_grant(code, request)
        return grant if grant is not None and client is not None and grant.application_id == client.pk else None

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, *args: Any, **kwargs: Any
    ) -> bool:
        request = kwargs.get("request", args[0] if args else None)
        grant = self._client_grant(code, client, request)
        return grant is not None and grant.redirect_uri_allowed(redirect_uri)

    def get_code_challenge(self, code: str, request: Any) -> str | None:
        grant = self._client_grant(code, request.client, request)
        return (grant.code_challenge or None) if grant is not None else None

    def get_code_challenge_method(self, code: str, request: Any) -> str | None:
        grant = self._client_grant(code, request.client, request)
        return (grant.code_challenge_method or None) if grant is not None else None

    def get_authorization_code_scopes(self, client_id: str, code: str, redirect_uri: str, request: Any) -> list[str]:
        grant = self._code_grant(code, request)
        return grant.scope.split() if grant is not None and grant.scope else []

    def get_authorization_code_nonce(self, client_id: str, code: str, redirect_uri: str, request: Any) -> str | None:
        grant = self._code_grant(code, request)
        return (grant.nonce or None) if grant is not None else None

    # --- Authorization-code reuse (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3) ----------------------------------------------
    # DOT deletes the grant once its code is exchanged, so a second use is only an unknown code to it, and the
    # tokens of the first use stay valid. We note in Redis what each exchange issued (for as long as that can
    # live) and revoke it when the code comes back.

    def _create_access_token(self, expires: Any, request: Any, token: Any, source_refresh_token: Any = None) -> Any:
        signed, id_token = getattr(request, "authsec_id_token", (None, None))
        if signed is None or signed != token.get("id_token"):
            access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        else:
            # DOT's own would verify the ID token it has just signed and read its row back: the row kept is linked.
            access_token = self._access_token_row(expires, request, token, id_token, source_refresh_token)
            access_token.save()
        request.authsec_created = {"access": access_token}
        return access_token

    def _check_and_set_request_resource(self, request: Any) -> None:
        """DOT's RFC 8707 audience (the request's `resource`, narrowed to what the code or refresh token was granted
        for), set once a request: it is asked before the token is minted and again when it is stored. For a code,
        the grant comes from the exchange's one read (`_code_grant`) instead of DOT's own query."""
        if getattr(request, "authsec_resource", None) is getattr(request, "resource", None) is not None:
            return
        if request.grant_type != "authorization_code":
            super()._check_and_set_request_resource(request)
        else:
            request.grant_type = "authsec:code-resource"  # DOT: normalise and check the URIs, nothing grant-wise
            try:
                super()._check_and_set_request_resource(request)
            finally:
                request.grant_type = "authorization_code"
            grant = self._client_grant(request.code, request.client, request)
            granted = (grant.resource or []) if grant is not None else []
            if request.resource and granted:
                for uri in request.resource:
                    if uri not in granted:
                        raise errors.CustomOAuth2Error(
                            error="invalid_target",
                            description=f"The requested resource '{uri}' is not allowed. Token request cannot "
                            "escalate resource permissions beyond the original authorization grant",
                            request=request,
                        )
            elif granted:
                self._validate_resource_uris(request, granted)  # rows older than the authorize endpoint's check
                request.resource = granted
        request.authsec_resource = request.resource

    def _create_refresh_token(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        refresh_token = super()._create_refresh_token(request, *args, **kwargs)
        getattr(request, "authsec_created", {})["refresh"] = refresh_token
        return refresh_token

    def _remember_code_tokens(self, token: dict[str, Any], request: Any) -> None:
        created = getattr(request, "authsec_created", {})  # the rows this exchange has just written
        access_ids = [created["access"].pk] if "access" in created else []
        refresh = created.get("refresh")
        families = [str(refresh.token_family)] if refresh is not None and refresh.token_family else []
        issued = {"access_ids": access_ids, "families": families}
        request.authsec_code_tokens = issued  # a concurrent second exchange revokes its own tokens too
        lifetime = settings.OAUTH_REFRESH_TOKEN_SECONDS if families else settings.OAUTH_ACCESS_TOKEN_SECONDS
        key = _used_code_key(request.code)
        try:
            previous = cache.get(key) or {}
            merged = {kind: sorted({*previous.get(kind, []), *issued[kind]}) for kind in ("access_ids", "families")}
            cache.set(key, {**merged, "user_id": getattr(request.user, "pk", None)}, timeout=lifetime)
        except Exception as exc:  # noqa: BLE001 - Redis down: the exchange still works, reuse is only refused
            logger.error("Could not note an authorization code's tokens (%s)", type(exc).__name__)

    def validate_code(self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        grant = self._client_grant(code, client, request)
        if grant is not None and not grant.is_expired():
            request.scopes = grant.scope.split(" ")
            request.user = grant.user
            if grant.nonce:
                request.nonce = grant.nonce
            if grant.claims:
                request.claims = json.loads(grant.claims)
            return request.user is None or request.user.is_active  # a code of a since-deactivated user
        self._revoke_reused_code_tokens(code, request)  # nothing to do unless the code was exchanged before
        return False

    def invalidate_authorization_code(self, client_id: str, code: str, request: Any, *args: Any, **kwargs: Any) -> None:
        request.authsec_grant = None
        # DOT's delete() reads the row first and wraps it in a transaction, for deletion signals nobody sends for
        # a grant (django-tenants listens to every model's deletions, which rules out Django's fast path): one
        # DELETE does it. Its row count is the single use: a concurrent exchange of the same code deletes nothing.
        deleted = Grant.objects.filter(code=code, application=request.client)._raw_delete(Grant.objects.db)
        if not deleted:
            # Two exchanges of one code raced and the other one consumed it first: this one is the reuse.
            self._revoke_reused_code_tokens(code, request)
            raise errors.InvalidGrantError(request=request)

    def _revoke_reused_code_tokens(self, code: str, request: Any) -> None:
        try:
            issued = cache.get(_used_code_key(code)) or {}
        except Exception as exc:  # noqa: BLE001
            logger.error("Could not check an authorization code for reuse (%s)", type(exc).__name__)
            issued = {}
        own = getattr(request, "authsec_code_tokens", None) or {}
        access_ids = {*issued.get("access_ids", []), *own.get("access_ids", [])}
        families = {*issued.get("families", []), *own.get("families", [])}
        if not access_ids and not families:
            return
        refresh_model = get_refresh_token_model()
        for family in families:
            refresh_model.revoke_family(uuid.UUID(family))  # the refresh tokens rotated from it too
        for access_token in get_access_token_model().objects.filter(pk__in=access_ids):
            revoke_access_token(access_token)
        audit.record(
            _client_actor(request),
            "oauth.code_reuse_detected",
            outcome="deny",
            data={"client_id": request.client_id, "user_id": issued.get("user_id"), "families": sorted(families)},
        )


def _audit_issued(actor: Any, action: str, data: dict[str, Any]) -> None:
    """The audit event of issued tokens. Where this process's audit pipeline runs (every server process), it is handed
    to the pipeline once the tokens have committed, before the answer leaves: journalled in the spool, written off
    the request path, without the chain lock held in the token transaction (docs/audit.md states what that
    promises). Elsewhere (a bare harness, a management command) it is written in the token transaction."""
    if not audit.pipeline_running():
        audit.record(actor, action, data=data)
        return
    event = audit.queued_event(
        connection.schema_name,
        audit.queued_actor(as_actor(actor)),
        action,
        AuditEvent.Outcome.SUCCESS,
        data,
        None,
        audit_context.current(),
    )
    transaction.on_commit(lambda: audit.enqueue(event))


_CLIENT_FIELDS = [field.attname for field in Client._meta.concrete_fields]


def _client_row(client_id: str) -> tuple[Any, ...] | None:
    """The client's column values, in `_CLIENT_FIELDS` order; None when there is no such client (not kept: DOT's path
    answers it, CIMD included)."""
    return Client.objects.filter(client_id=client_id).values_list(*_CLIENT_FIELDS).first()


def _error_text(text: str) -> str:
    """RFC 6749 §5.2: an `error_description` is printable ASCII without `"` and `\\` (names are not)."""
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "?" for ch in text)


def _at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6 for RS256: base64url of the left half of the token's SHA-256."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _used_code_key(code: str) -> str:
    # The cache key function adds the tenant's schema; the code itself is a credential, so only its hash is kept.
    return "oauth:code-exchanged:" + hashlib.sha256(code.encode()).hexdigest()
