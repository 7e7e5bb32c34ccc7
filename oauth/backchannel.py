"""Backchannel (CIBA) clients of a tenant: who may name a user and ask for a token that the user approves.

OpenID Connect CIBA requires the client to authenticate at every backchannel call. A CIBA client is a
*confidential*, active `Client` with `is_ciba_client` set by an admin; it authenticates with its secret through
HTTP Basic (`client_secret_basic`) or ``client_secret`` in the body (`client_secret_post`). The published SDK's
`CIBAClient` sends Basic unmodified when its base URL carries the credentials (``https://<id>:<secret>@host/…``)
or when ``~/.netrc`` names the host (`requests` adds them): docs/ciba.md.
Unknown ids and wrong secrets take the same path (a hash check against a dummy), so neither the answer nor its
timing tells which one was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import check_password
from django.http import HttpRequest
from oauth2_provider.models import get_access_token_model

import audit
from audit.models import AuditEvent
from audit.recorder import Actor
from oauth.introspection import _claims as verified_claims
from oauth.models import Client
from oauth.resource_servers import _dummy_hash, basic_credentials

HOW_TO_AUTHENTICATE = (
    "Authenticate the CIBA client with its secret: HTTP Basic (put the credentials in the SDK's base URL, "
    "https://<client_id>:<client_secret>@host/t/<tenant>/oauth, or in ~/.netrc) or client_secret in the body."
)


class BackchannelError(Exception):
    """An OAuth error answer (RFC 6749 §5.2 / CIBA §13): HTTP `status`, `error` code, `description`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client

    @property
    def actor(self) -> Actor:
        return Actor(AuditEvent.ActorType.CLIENT, self.client.client_id, self.client.name)


def _presented(request: HttpRequest, body: dict[str, Any]) -> tuple[str, str] | None:
    """(client_id, secret) from HTTP Basic or the body; the body's client_id must match Basic's when both name one."""
    basic = basic_credentials(request)
    named = body.get("client_id")
    if named is not None and not isinstance(named, str):
        raise BackchannelError(400, "invalid_request", "client_id must be a string.")
    in_body = body.get("client_secret")
    if in_body is not None and not isinstance(in_body, str):
        raise BackchannelError(400, "invalid_request", "client_secret must be a string.")
    if basic is not None:
        if in_body is not None:
            raise BackchannelError(400, "invalid_request", "Use one client authentication method, not two.")
        if named and not hmac.compare_digest(named.encode(), basic.client_id.encode()):
            raise BackchannelError(401, "invalid_client", "The client_id differs from the authenticated client.")
        return basic.client_id, basic.secret
    if named and in_body is not None:
        return named, in_body
    return None


def authenticate(request: HttpRequest, body: dict[str, Any]) -> AuthenticatedClient:
    """The CIBA client that authenticated this request, or `BackchannelError` (401 invalid_client, 400
    unauthorized_client for a client that may not use CIBA). Failures are audited."""
    presented = _presented(request, body)
    if presented is None:
        _failed(request, str(body.get("client_id") or ""), "no credentials")
        raise BackchannelError(401, "invalid_client", f"Client authentication is required. {HOW_TO_AUTHENTICATE}")
    client_id, secret = presented
    client = Client.objects.filter(client_id=client_id[:100]).first() if client_id else None
    stored = client.client_secret if client is not None and client.client_secret else _dummy_hash()
    secret_ok = check_password(secret, stored)
    if client is None or not secret_ok or client.client_type != Client.CLIENT_CONFIDENTIAL:
        _failed(request, client_id, "invalid credentials" if client is not None else "unknown client")
        raise BackchannelError(401, "invalid_client", f"Unknown client or wrong secret. {HOW_TO_AUTHENTICATE}")
    if client.status != Client.Status.ACTIVE:
        _failed(request, client_id, f"client {client.status}")
        raise BackchannelError(401, "invalid_client", "This client is not active in the AuthSec dashboard.")
    if not client.is_ciba_client:
        _failed(request, client_id, "not a CIBA client")
        raise BackchannelError(
            400,
            "unauthorized_client",
            "This client may not use backchannel sign-in: an administrator ticks 'may ask users to approve "
            "sign-ins (CIBA)' on the client's page.",
        )
    return AuthenticatedClient(client)


def _failed(request: HttpRequest, client_id: str, reason: str) -> None:
    audit.record(
        Actor(AuditEvent.ActorType.CLIENT if client_id else AuditEvent.ActorType.ANONYMOUS, client_id[:128], ""),
        "oauth.ciba_client_auth_failed",
        outcome=AuditEvent.Outcome.DENY,
        request=request,
        data={"client_id": client_id[:128], "endpoint": request.path.rsplit("/", 1)[-1][:64], "reason": reason},
    )


@dataclass(frozen=True)
class BearerUser:
    """The user of a valid access token of this tenant, and the token's verified claims."""

    user: Any
    claims: dict[str, Any]

    def verified_factor_within(self, seconds: int) -> bool:
        """The token was issued right after a second factor (`amr` otp, as TOTP sign-in issues) `seconds` ago or
        less: proof of a fresh factor for an approval made over the API."""
        amr = self.claims.get("amr")
        auth_time = self.claims.get("auth_time")
        return (
            isinstance(amr, list)
            and "otp" in amr
            and isinstance(auth_time, int)
            and 0 <= time.time() - auth_time <= seconds
        )


def bearer_user(request: HttpRequest) -> BearerUser | None:
    """The active user whose valid access token of this tenant the request carries (`Authorization: Bearer`)."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 8192:
        return None
    checksum = hashlib.sha256(value.encode("utf-8")).hexdigest()
    token = get_access_token_model().objects.select_related("user").filter(token_checksum=checksum).first()
    if token is None or not token.is_valid() or token.user is None or not token.user.is_active:
        return None
    return BearerUser(token.user, verified_claims(value))
