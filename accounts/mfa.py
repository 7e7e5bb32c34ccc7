"""Second factors of a tenant's users: TOTP (django-otp), passkeys (WebAuthn through `fido2`) and one-time
recovery codes, and the session's record of a recent verification (docs/mfa.md).

The stable API other apps use:
- `verified_recently(request, within=300)`: this session verified a factor of its user less than `within`
  seconds ago (in this tenant);
- `step_up_url(request, next_url)`: the page that asks for a factor, then goes to `next_url` (same origin only);
- `has_factor(user)`, `verify_totp(user, code)`, `mark_verified(request)`;
- `fresh_factor_required(within=300)`: a view decorator built on the two first.

Every check that changes state (a TOTP time step used, a recovery code spent, a passkey's counter) is a service
function of `accounts.services`, audited there. A factor belongs to a user of one schema: checks match the user's
id and email in the current schema, and the session mark names the schema and the user.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.plugins.otp_totp.models import TOTPDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import services
from accounts.models import MfaSettings, Passkey, RecoveryCode, User

SESSION_KEY = "accounts.mfa_verified"
_REGISTER_STATE = "accounts.mfa_passkey_register"
_AUTH_STATE = "accounts.mfa_passkey_auth"
DEFAULT_WITHIN = 300
ViewFunc = Callable[..., HttpResponse]


# --- the session's verification mark ----------------------------------------------------------------------------


def _mark_for(request: HttpRequest) -> dict[str, Any] | None:
    mark = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    return mark if isinstance(mark, dict) else None


def mark_verified(request: HttpRequest) -> None:
    """Note in the session that its user verified a second factor now (call only after a verified factor).
    The session key changes too, so a session id seen before the step-up does not carry the new trust."""
    user = request.user
    if not user.is_authenticated:
        raise ValueError("mark_verified needs a signed-in user")
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"at": time.time(), "schema": connection.schema_name, "user": str(user.pk)}


def verified_at(request: HttpRequest) -> float | None:
    """When this session's user last verified a second factor in this schema (epoch seconds), or None."""
    mark = _mark_for(request)
    user = getattr(request, "user", None)
    if mark is None or user is None or not user.is_authenticated:
        return None
    if mark.get("schema") != connection.schema_name or mark.get("user") != str(user.pk):
        return None
    at = mark.get("at")
    return float(at) if isinstance(at, int | float) else None


def verified_recently(request: HttpRequest, *, within: int = DEFAULT_WITHIN) -> bool:
    """The session's user verified a second factor in this tenant less than `within` seconds ago."""
    at = verified_at(request)
    return at is not None and 0 <= time.time() - at <= within


def forget_verification(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


# --- where to go -------------------------------------------------------------------------------------------------


def safe_next(request: HttpRequest, next_url: str | None, default: str | None = None) -> str:
    """`next_url` when it stays on this site (a path or this host), else `default` (the security page)."""
    fallback = default or reverse("accounts-security")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return fallback


def step_up_url(request: HttpRequest, next_url: str) -> str:
    """The page that asks the signed-in user for a factor (TOTP, passkey or recovery code), then redirects to
    `next_url` (kept only when same-origin)."""
    return reverse("accounts-mfa-verify") + "?" + urlencode({"next": safe_next(request, next_url)})


def fresh_factor_required(within: int = DEFAULT_WITHIN) -> Callable[[ViewFunc], ViewFunc]:
    """A view decorator: signed-in users only (else the tenant login), with a factor verified in the last `within`
    seconds (else the step-up page, which comes back to this URL; a POST's body is not replayed)."""

    def decorate(view: ViewFunc) -> ViewFunc:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("accounts-login"))
            if not verified_recently(request, within=within):
                return HttpResponseRedirect(step_up_url(request, request.get_full_path()))
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def security_url() -> str:
    return reverse("accounts-security")


# --- which factors a user has -------------------------------------------------------------------------------------


def _own(queryset: Any, user: Any) -> Any:
    """Rows of `user` in the current schema: the id and the email must both match (ids repeat across schemas)."""
    return queryset.filter(user_id=user.pk, user__email=getattr(user, "email", None))


def has_totp(user: Any) -> bool:
    return bool(user and user.pk) and _own(TOTPDevice.objects.filter(confirmed=True), user).exists()


def passkeys_of(user: Any) -> list[Passkey]:
    return list(_own(Passkey.objects.all(), user)) if user and user.pk else []


def recovery_codes_left(user: Any) -> int:
    return _own(RecoveryCode.objects.filter(used_at__isnull=True), user).count() if user and user.pk else 0


def has_factor(user: Any) -> bool:
    """Whether `user` has a TOTP device or a passkey in this tenant (recovery codes alone do not count)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        return False
    return has_totp(user) or _own(Passkey.objects.all(), user).exists()


def staff_must_verify(user: Any) -> bool:
    """The tenant requires a second factor of dashboard staff and `user` is staff."""
    return bool(getattr(user, "is_staff", False)) and MfaSettings.current().require_for_staff


# --- checks -------------------------------------------------------------------------------------------------------


def verify_totp(user: User, code: str) -> bool:
    """`code` is a current TOTP code of `user`, not used before (audited; throttled after failures)."""
    if not user or not user.pk or not isinstance(code, str) or len(code.strip()) > 10:
        return False
    return services.check_totp(user=user, code=code)


def verify_recovery_code(user: User, code: str) -> bool:
    """`code` is an unused recovery code of `user`; it is spent (audited)."""
    if not user or not user.pk or not isinstance(code, str) or not 8 <= len(code) <= 64:
        return False
    return services.use_recovery_code(user=user, code=code)


# --- WebAuthn (passkeys) ---------------------------------------------------------------------------------------------


def expected_origin(request: HttpRequest) -> str:
    """The origin a browser shows for this tenant: AUTHSEC_PUBLIC_URL's when the request came to its host (its
    scheme wins behind a TLS-terminating proxy), else the request's own scheme and host (host routing)."""
    public = urlsplit(settings.AUTHSEC_PUBLIC_URL)
    host = request.get_host()
    if host == public.netloc:
        return f"{public.scheme}://{public.netloc}"
    return f"{request.scheme}://{host}"


def rp_id(request: HttpRequest) -> str:
    """The relying-party id: the tenant's host name (no port)."""
    return urlsplit(expected_origin(request)).hostname or ""


def _server(request: HttpRequest) -> Fido2Server:
    origin = expected_origin(request)
    tenant = getattr(request, "tenant", None)
    name = getattr(tenant, "name", "") or "AuthSec"
    return Fido2Server(
        PublicKeyCredentialRpEntity(id=rp_id(request), name=name),
        # Exactly the tenant's origin, not any subdomain of the RP id.
        verify_origin=lambda seen: seen == origin,
    )


def _credentials(passkeys: list[Passkey]) -> list[AttestedCredentialData]:
    return [AttestedCredentialData(bytes(p.credential_data)) for p in passkeys]


def passkey_register_begin(request: HttpRequest) -> dict[str, Any]:
    """Creation options for a new passkey of the signed-in user (JSON form); the challenge stays in the session."""
    user = request.user
    existing = [p for p in passkeys_of(user) if p.rp_id == rp_id(request)]
    options, state = _server(request).register_begin(
        PublicKeyCredentialUserEntity(
            id=f"{connection.schema_name}:{user.pk}".encode(), name=user.email, display_name=user.get_full_name()
        ),
        credentials=_credentials(existing),
        resident_key_requirement=ResidentKeyRequirement.PREFERRED,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    request.session[_REGISTER_STATE] = {**state, "user": str(user.pk), "schema": connection.schema_name}
    return dict(options)


class PasskeyError(ValueError):
    """A WebAuthn response that does not verify; the message is safe to show."""


def passkey_register_complete(request: HttpRequest, response: Any, name: str) -> Passkey:
    """Verify the browser's attestation against the session's challenge and store the passkey (audited)."""
    state = request.session.pop(_REGISTER_STATE, None)
    user = request.user
    if not state or state.get("user") != str(user.pk) or state.get("schema") != connection.schema_name:
        raise PasskeyError("No passkey registration is in progress; start again.")
    try:
        auth_data = _server(request).register_complete(
            {"challenge": state["challenge"], "user_verification": state["user_verification"]},
            RegistrationResponse.from_dict(response),
        )
    except Exception as exc:  # fido2 raises ValueError, KeyError, TypeError… on malformed input
        raise PasskeyError("The passkey could not be verified.") from exc
    credential = auth_data.credential_data
    if credential is None:
        raise PasskeyError("The authenticator returned no credential.")
    if Passkey.objects.filter(credential_id=bytes(credential.credential_id)).exists():
        raise PasskeyError("This passkey is already registered.")
    return services.add_passkey(
        actor=user,
        user=user,
        name=name,
        credential_id=bytes(credential.credential_id),
        credential_data=bytes(credential),
        rp_id=rp_id(request),
        sign_count=auth_data.counter,
    )


def passkey_auth_begin(request: HttpRequest) -> dict[str, Any]:
    """Request options for the signed-in user's passkeys of this tenant's RP id (JSON form)."""
    user = request.user
    mine = [p for p in passkeys_of(user) if p.rp_id == rp_id(request)]
    options, state = _server(request).authenticate_begin(
        _credentials(mine), user_verification=UserVerificationRequirement.PREFERRED
    )
    request.session[_AUTH_STATE] = {**state, "user": str(user.pk), "schema": connection.schema_name}
    return dict(options)


def passkey_auth_complete(request: HttpRequest, response: Any) -> bool:
    """Verify the browser's assertion for the signed-in user; true when it is one of their passkeys for this
    tenant, signed over the session's challenge at this origin. Audited either way."""
    state = request.session.pop(_AUTH_STATE, None)
    user = request.user
    if not state or state.get("user") != str(user.pk) or state.get("schema") != connection.schema_name:
        services.passkey_failed(user=user, reason="no challenge in progress")
        return False
    mine = [p for p in passkeys_of(user) if p.rp_id == rp_id(request)]
    try:
        parsed = AuthenticationResponse.from_dict(response)
        credential = _server(request).authenticate_complete(
            {"challenge": state["challenge"], "user_verification": state["user_verification"]},
            _credentials(mine),
            parsed,
        )
    except Exception as exc:  # fido2 raises ValueError, KeyError, TypeError… on malformed input
        services.passkey_failed(user=user, reason=str(exc) or type(exc).__name__)
        return False
    passkey = next(p for p in mine if bytes(p.credential_id) == bytes(credential.credential_id))
    return services.passkey_used(passkey=passkey, sign_count=parsed.response.authenticator_data.counter)
