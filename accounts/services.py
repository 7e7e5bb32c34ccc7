"""Writes on users (tenant users and the platform's) and on the platform's Django permission groups: the
service functions the dashboards and the code call (`audit.writes.service`: one durable transaction with its
one audit event; ``.nested`` inside a caller's).

Deactivating or deleting a user, whichever way, also revokes every token, grant and MCP login session of the
user in the same transaction (`accounts.signals.end_user_access`, event `accounts.user_access_revoked`); the
functions here name the actor in that event."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import MfaSettings, Passkey, RecoveryCode, User
from accounts.roles import apply_roles, roles_of
from accounts.signals import ACTOR_ATTRIBUTE
from audit import writes
from audit.recorder import record
from audit.writes import service

M2M = Mapping[str, Iterable[Any]] | None


@service
def save_user(
    user: User,
    *,
    actor: Any,
    m2m: M2M = None,
    roles: list[str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> User:
    """Create or change a user (its many-to-many `m2m`: the platform's groups and permissions). `roles`, when
    given, are the user's dashboard roles (`accounts.roles`), written with the rest of the row: the event shows
    them before and after. Deactivating revokes the user's access (`accounts.user_access_revoked`)."""
    extra = dict(data or {})
    if roles is not None:
        stored = User.objects.filter(pk=user.pk).first() if user.pk is not None else None
        before = roles_of(stored) if stored is not None else []
        apply_roles(user, roles)
        if roles_of(user) != before:
            extra["roles"] = {"before": before, "after": roles_of(user)}
    setattr(user, ACTOR_ATTRIBUTE, actor)  # named in `accounts.user_access_revoked` if this deactivates
    return writes.save(
        actor, user, m2m=m2m, created="accounts.user_created", changed="accounts.user_changed", data=extra
    )


@service
def deactivate_user(*, actor: Any, user: User) -> User:
    """Set `user` inactive; their tokens and sessions stop working at once. A second call changes nothing."""
    if user.is_active:
        user.is_active = False
        save_user.nested(user, actor=actor)
    return user


@service
def delete_user(user: User, *, actor: Any) -> None:
    """Delete `user` and everything they hold (tokens, grants, sessions), auditing who did it."""
    setattr(user, ACTOR_ATTRIBUTE, actor)
    writes.delete(actor, user, event="accounts.user_deleted", data={"user": user.email})


@service
def set_user_password(user: User, *, actor: Any, password: str | None) -> User:
    """Set `user`'s password, or make it unusable (`None`: no password sign-in). The event says which, never
    the password."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    record(actor, "accounts.password_changed", target=user, data={"user": user.email, "usable": password is not None})
    return user


@service
def save_permission_group(group: Group, *, actor: Any, m2m: M2M = None) -> Group:
    """A Django permission group of the platform admin (public schema), with its permissions."""
    return writes.save(
        actor, group, m2m=m2m, created="accounts.permission_group_created", changed="accounts.permission_group_changed"
    )


@service
def delete_permission_group(group: Group, *, actor: Any) -> None:
    writes.delete(actor, group, event="accounts.permission_group_deleted")


# --- second factors (accounts.mfa, docs/mfa.md) -------------------------------------------------------------------


def _hash_recovery_code(code: str) -> str:
    """Recovery codes are compared by their SHA-256 (of the code without spaces or dashes, upper-cased)."""
    normalized = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normalized.encode()).hexdigest()


def _verification_event(user: User, method: str, ok: bool, **data: Any) -> None:
    """The one place that names the verification events: a factor accepted or refused."""
    if ok:
        record(user, "accounts.mfa_verified", target=user, data={"user": user.email, "method": method, **data})
    else:
        record(
            user,
            "accounts.mfa_verification_failed",
            target=user,
            outcome="failure",
            data={"user": user.email, "method": method, **data},
        )


@service
def enroll_totp(*, actor: Any, user: User, key_hex: str, last_t: int) -> TOTPDevice:
    """Give `user` a confirmed TOTP device with secret `key_hex` (replacing any earlier one); `last_t` is the time
    step of the code that confirmed it, so that code cannot be used again."""
    TOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", key=key_hex, confirmed=True, last_t=last_t)
    record(actor, "accounts.mfa_totp_enrolled", target=user, data={"user": user.email})
    return device


@service
def remove_totp(*, actor: Any, user: User) -> int:
    """Remove `user`'s TOTP devices; the count removed (0: nothing to do, no event)."""
    count, _ = TOTPDevice.objects.filter(user=user).delete()
    if count:
        record(actor, "accounts.mfa_totp_removed", target=user, data={"user": user.email})
    return count


@service
def check_totp(*, user: User, code: str) -> bool:
    """Whether `code` is a current TOTP code of `user`'s confirmed device, used for the first time: django-otp's
    check (time-step tolerance 1, replay refused through `last_t`, throttling after failures) under a row
    lock, so two requests with one code cannot both pass. Audited either way."""
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user_id=user.pk, user__email=user.email, confirmed=True)
        .order_by("pk")
        .first()
    )
    ok = bool(device is not None and code.strip().isdigit() and device.verify_token(code.strip()))
    _verification_event(user, "totp", ok)
    return ok


@service
def use_recovery_code(*, user: User, code: str) -> bool:
    """Spend one of `user`'s recovery codes: true once per code, audited either way."""
    digest = _hash_recovery_code(code)
    row = (
        RecoveryCode.objects.select_for_update()
        .filter(user_id=user.pk, user__email=user.email, used_at__isnull=True, code_hash=digest)
        .first()
    )
    if row is not None:
        row.used_at = timezone.now()
        row.save(update_fields=["used_at"])
    left = RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count()
    _verification_event(user, "recovery_code", row is not None, remaining=left)
    return row is not None


@service
def passkey_used(*, passkey: Passkey, sign_count: int) -> bool:
    """Record a verified passkey assertion. A signature counter that does not grow (when the authenticator
    keeps one) means a cloned credential: refused and audited."""
    locked = Passkey.objects.select_for_update().get(pk=passkey.pk)
    ok = not (sign_count or locked.sign_count) or sign_count > locked.sign_count
    if ok:
        locked.sign_count = sign_count
        locked.last_used_at = timezone.now()
        locked.save(update_fields=["sign_count", "last_used_at"])
    _verification_event(locked.user, "passkey", ok, passkey=locked.name)
    return ok


@service
def passkey_failed(*, user: User, reason: str) -> None:
    """Record a passkey assertion that did not verify (wrong origin, challenge, signature, unknown key)."""
    _verification_event(user, "passkey", False, reason=reason[:200])


@service
def add_passkey(
    *, actor: Any, user: User, name: str, credential_id: bytes, credential_data: bytes, rp_id: str, sign_count: int
) -> Passkey:
    """Register a verified WebAuthn credential as `user`'s passkey for relying party `rp_id`."""
    passkey = Passkey.objects.create(
        user=user,
        name=(name or "Passkey")[:100],
        credential_id=credential_id,
        credential_data=credential_data,
        rp_id=rp_id,
        sign_count=sign_count,
    )
    record(
        actor,
        "accounts.mfa_passkey_added",
        target=user,
        data={"user": user.email, "name": passkey.name, "rp_id": rp_id},
    )
    return passkey


@service
def remove_passkey(*, actor: Any, passkey: Passkey) -> None:
    """Remove one passkey of its user."""
    record(
        actor,
        "accounts.mfa_passkey_removed",
        target=passkey.user,
        data={"user": passkey.user.email, "name": passkey.name, "rp_id": passkey.rp_id},
    )
    passkey.delete()


RECOVERY_CODE_COUNT = 10


@service
def regenerate_recovery_codes(*, actor: Any, user: User) -> list[str]:
    """Replace `user`'s recovery codes with 10 new ones, returned once in clear (only hashes are stored)."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 80 bits, 16 characters
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:12]}-{raw[12:]}")
    RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_hash_recovery_code(c)) for c in codes])
    record(actor, "accounts.mfa_recovery_codes_generated", target=user, data={"user": user.email, "count": len(codes)})
    return codes


@service
def reset_factors(*, actor: Any, user: User) -> dict[str, int]:
    """An admin removes every second factor of `user` (TOTP, passkeys, recovery codes), e.g. after a lost phone.
    The user signs in with their password and enrolls again; the event names who did it."""
    counts = {
        "totp": TOTPDevice.objects.filter(user=user).delete()[0],
        "passkeys": Passkey.objects.filter(user=user).delete()[0],
        "recovery_codes": RecoveryCode.objects.filter(user=user).delete()[0],
    }
    record(actor, "accounts.mfa_factors_reset", target=user, data={"user": user.email, **counts})
    return counts


@service
def save_mfa_settings(settings_row: MfaSettings, *, actor: Any, m2m: M2M = None) -> MfaSettings:
    """The tenant's second-factor policy (whether staff must verify one before the dashboard opens)."""
    return writes.save(
        actor, settings_row, m2m=m2m, created="accounts.mfa_settings_created", changed="accounts.mfa_settings_changed"
    )
