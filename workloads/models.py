"""Workload registrations of a tenant and the state of each one's current X.509-SVID.

A `Workload` is one SPIFFE ID in the tenant's trust domain. Postgres keeps the registration and the public
facts of the current SVID (serial, validity, last failure); the certificate, its private key and the bundle
live only in the files under ``<SVID_DIR>/<tenant>/<workload>/`` (and the CA key only in Vault).
"""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

WORKLOAD_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
validate_workload_name = RegexValidator(
    WORKLOAD_NAME_RE,
    "Use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit.",
    code="invalid_workload_name",
)
# SPIFFE ID path (spec §2.2): "/"-separated segments of letters, digits, ".", "-", "_"; no empty, "." or "..".
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_PATH_LENGTH = 255


def validate_spiffe_path(value: str) -> None:
    """A SPIFFE ID path such as ``/billing/api``: starts with "/", no trailing "/", legal segments only."""
    if not value.startswith("/") or value == "/":
        raise ValidationError('A SPIFFE ID path starts with "/" and names something, e.g. "/billing/api".')
    if value.endswith("/"):
        raise ValidationError('A SPIFFE ID path must not end with "/".')
    if len(value) > MAX_PATH_LENGTH:
        raise ValidationError(f"A SPIFFE ID path has at most {MAX_PATH_LENGTH} characters.")
    for segment in value[1:].split("/"):
        if segment in ("", ".", ".."):
            raise ValidationError('A SPIFFE ID path has no empty, "." or ".." segments.')
        if not _PATH_SEGMENT.match(segment):
            raise ValidationError(
                f'Segment "{segment}" may only use letters, digits, ".", "-" and "_" (SPIFFE ID spec).'
            )


def trust_domain_for(slug: str) -> str:
    """The SPIFFE trust domain of tenant `slug`: ``<slug>.<SPIFFE_TRUST_DOMAIN_SUFFIX>``."""
    return f"{slug}.{settings.SPIFFE_TRUST_DOMAIN_SUFFIX}"


def default_ttl() -> int:
    return settings.SVID_DEFAULT_TTL


EXPIRY_SOON = dt.timedelta(days=1)  # "expiring soon" on the dashboard home and the workload list's filter


def expiring_q(now: dt.datetime, within: dt.timedelta = EXPIRY_SOON) -> models.Q:
    """Enabled workloads whose SVID is still valid at `now` but expires within `within`."""
    return models.Q(is_enabled=True, svid_not_after__gt=now, svid_not_after__lte=now + within)


def expired_q(now: dt.datetime) -> models.Q:
    """Enabled workloads whose SVID had expired by `now` (the renewal did not happen in time)."""
    return models.Q(is_enabled=True, svid_not_after__lte=now)


class WorkloadQuerySet(models.QuerySet["Workload"]):
    def svid_expiring(self, now: dt.datetime | None = None) -> WorkloadQuerySet:
        return self.filter(expiring_q(now or timezone.now()))

    def svid_expired(self, now: dt.datetime | None = None) -> WorkloadQuerySet:
        return self.filter(expired_q(now or timezone.now()))


class Workload(models.Model):
    """One SPIFFE workload identity of the tenant, ``spiffe://<trust domain><spiffe_path>``.

    The svid_* fields describe the SVID on disk (never its key); `last_error` holds the latest failed
    issuance, cleared by the next success."""

    class Status(models.TextChoices):
        NONE = "none", "no SVID yet"
        VALID = "valid", "valid"
        EXPIRING = "expiring", "expiring (renewal due)"
        EXPIRED = "expired", "expired"
        FAILED = "failed", "failed (last renewal failed)"
        DISABLED = "disabled", "disabled"

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[validate_workload_name],
        help_text="Directory name of the SVID files: <SVID_DIR>/<tenant>/<name>/.",
    )
    spiffe_path = models.CharField(
        "SPIFFE ID path",
        max_length=MAX_PATH_LENGTH,
        unique=True,
        validators=[validate_spiffe_path],
        help_text='Path of the SPIFFE ID in this tenant\'s trust domain, e.g. "/billing/api".',
    )
    description = models.TextField(blank=True)
    ttl_seconds = models.PositiveIntegerField(
        "SVID lifetime (seconds)",
        default=default_ttl,
        validators=[MinValueValidator(60), MaxValueValidator(365 * 24 * 3600)],
        help_text="Lifetime of each SVID; it is renewed once SVID_RENEW_FRACTION of it has passed.",
    )
    is_enabled = models.BooleanField("enabled", default=True)
    svid_serial = models.CharField("SVID serial", max_length=128, blank=True, editable=False)
    svid_not_before = models.DateTimeField("SVID valid from", null=True, blank=True, editable=False)
    svid_not_after = models.DateTimeField("SVID expires", null=True, blank=True, editable=False)
    svid_issued_at = models.DateTimeField("SVID written", null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkloadQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.ttl_seconds and self.ttl_seconds > settings.SVID_MAX_TTL:
            raise ValidationError(
                {"ttl_seconds": f"At most {settings.SVID_MAX_TTL} seconds (SVID_MAX_TTL, the PKI role's limit)."}
            )

    def spiffe_id_in(self, slug: str) -> str:
        return f"spiffe://{trust_domain_for(slug)}{self.spiffe_path}"

    def renewal_point(self) -> dt.datetime | None:
        """When the current SVID should be replaced: after SVID_RENEW_FRACTION of its lifetime."""
        if self.svid_not_before is None or self.svid_not_after is None:
            return None
        lifetime = self.svid_not_after - self.svid_not_before
        return self.svid_not_before + lifetime * settings.SVID_RENEW_FRACTION

    def is_renewal_due(self, now: dt.datetime | None = None) -> bool:
        now = now or timezone.now()
        point = self.renewal_point()
        return point is None or now >= point or bool(self.last_error)

    def status(self, now: dt.datetime | None = None) -> str:
        """valid / expiring / expired / failed (latest attempt failed; the previous SVID stays on disk)."""
        now = now or timezone.now()
        if not self.is_enabled:
            return self.Status.DISABLED
        if self.svid_not_after is not None and now >= self.svid_not_after:
            return self.Status.EXPIRED
        if self.last_error:
            return self.Status.FAILED
        point = self.renewal_point()
        if point is None:
            return self.Status.NONE
        return self.Status.EXPIRING if now >= point else self.Status.VALID
