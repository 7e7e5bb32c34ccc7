"""Users log in with their email. Each schema (public and every tenant) has its own user table."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from accounts.roles import STORED_ROLES, DashboardRole


def normalize_email_address(email: str) -> str:
    """Emails are stored and compared lower-cased and trimmed, so ``Alice@Acme.test`` is ``alice@acme.test``."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=normalize_email_address(username or ""))

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        email = normalize_email_address(email)
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=email, **extra)
        user.set_password(password)  # None gives an unusable password
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("A superuser must have is_staff and is_superuser set.")
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in to one tenant (or, in the public schema, to the platform admin)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log in to this tenant's admin dashboard.")
    # Dashboard roles other than Tenant admin (which is `is_superuser`): see accounts.roles.
    dashboard_roles = ArrayField(
        models.CharField(max_length=32, choices=[(r, DashboardRole(r).label) for r in STORED_ROLES]),
        default=list,
        blank=True,
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email_address(self.email)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email_address(self.email)
        super().save(*args, **kwargs)

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class MfaSettings(models.Model):
    """The tenant's second-factor policy (one row per schema, `MfaSettings.current()`): whether dashboard staff
    must present a second factor before the dashboard opens (docs/mfa.md)."""

    require_for_staff = models.BooleanField(
        default=False,
        help_text="Staff must verify a second factor (TOTP, passkey or recovery code) before the dashboard opens.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "second-factor settings"
        verbose_name_plural = "second-factor settings"

    def __str__(self) -> str:
        return "Second factors: " + ("required for staff" if self.require_for_staff else "optional")

    @classmethod
    def current(cls) -> MfaSettings:
        """The schema's row, or an unsaved default (nothing required) when none was saved yet."""
        return cls.objects.order_by("pk").first() or cls()


class Passkey(models.Model):
    """A WebAuthn credential (passkey) of a user: its public key as fido2's attested credential data, bound to
    the relying-party id (the tenant's host) it was created for; `sign_count` only grows."""

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=100, default="Passkey")
    credential_id = models.BinaryField(unique=True)
    credential_data = models.BinaryField(help_text="fido2 AttestedCredentialData: id and COSE public key")
    rp_id = models.CharField(max_length=255)
    sign_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"


class RecoveryCode(models.Model):
    """A one-time recovery code: only its SHA-256 is stored (codes are 80 random bits); `used_at` is set once."""

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="accounts_recovery_code_unique")]

    def __str__(self) -> str:
        return f"Recovery code of {self.user}" + (" (used)" if self.used_at else "")
