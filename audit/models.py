"""The append-only audit log of a schema (each tenant has its own; the public schema logs platform actions).

Rows are written only through `audit.record`. They cannot be changed or deleted through a model, a
queryset or the admin, and a database trigger refuses UPDATE and DELETE as well, so a bug elsewhere in
the code cannot rewrite history. Each schema's events form a hash chain (`audit.chain`): every event
stores the SHA-256 of its canonical content, which includes the previous event's hash, so an edited,
inserted or deleted row is detected by `manage.py verify_audit`. Retention purges old events through an
explicit database switch, after archiving them with a chain checkpoint.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models, transaction
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Upper
from django.utils import timezone

from audit.chain import HASHED_FIELDS


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or delete an audit event."""

    def __init__(self, what: str = "changed or deleted") -> None:
        super().__init__(f"Audit events are append-only and cannot be {what}.")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("updated")

    def delete(self) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")

    def bulk_update(self, objs: Any, fields: Any, batch_size: Any = None) -> NoReturn:
        raise AuditLogIsAppendOnly("updated")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("updated")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        # Rows inserted in bulk would bypass the hash chain; every event goes through audit.record.
        raise AuditLogIsAppendOnly("inserted in bulk (use audit.record)")

    def _raw_delete(self, using: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")

    def insert_linked(self, rows: list[dict[str, Any]]) -> None:
        """Insert new events, given as their stored fields, with one ``COPY``, linked into the chain under one
        lock (`audit.record_many`).

        Plain dicts and COPY rather than model instances and `bulk_create`: the MCP endpoint writes an event
        per tool call, and building models and Django's bulk insert cost several times more CPU per row."""
        from audit import chain

        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(name) for name in COPY_COLUMNS)
        data_at = COPY_COLUMNS.index("data")
        with transaction.atomic(using=self.db, savepoint=False):
            data_texts = chain.link_rows(rows, using=self.db)
            with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row, data_text in zip(rows, data_texts, strict=True):
                    values = [row[name] for name in COPY_COLUMNS]
                    values[data_at] = data_text  # the JSON text that was hashed
                    copy.write_row(values)

    def for_actor(self, actor_id: str) -> AuditEventQuerySet:
        return self.filter(actor_id=actor_id)

    def newest_first(self) -> AuditEventQuerySet:
        """The review pages' order; (created_at, id) is unique and matches the chain order."""
        return self.order_by("-created_at", "-id")


class AuditEvent(models.Model):
    """One thing that happened: who (actor snapshot), what (action), to what (target), with what result.

    `seq`, `prev_hash` and `hash` place the event in its schema's hash chain; `category`, `application`
    and `tool` are generated columns (from `action` and `data`) so the review filters can use indexes."""

    class ActorType(models.TextChoices):
        USER = "user", "User"
        CLIENT = "client", "OAuth client"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        ALLOW = "allow", "Allowed"
        DENY = "deny", "Denied"

    # Set inside the chain lock (never earlier than the previous event's), so time order is chain order.
    created_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=128, blank=True)
    actor_label = models.CharField(max_length=255, blank=True, help_text="The actor's name at the time of the event.")
    # No index of its own: the review pages filter on `category` (indexed) and search actions by substring.
    action = models.CharField(max_length=100, help_text='Dotted name, e.g. "tenant.created".')
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)  # found by the text search, which scans a time window
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    seq = models.BigIntegerField(unique=True, editable=False, help_text="Position in this schema's hash chain.")
    prev_hash = models.CharField(max_length=64, editable=False, help_text="Hash of the previous event in the chain.")
    hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of this event's canonical content.")
    category = models.GeneratedField(
        expression=models.Func(models.F("action"), models.Value("."), models.Value(1), function="split_part"),
        output_field=models.CharField(max_length=100),
        db_persist=True,
    )
    application = models.GeneratedField(
        expression=KeyTextTransform("application", "data"), output_field=models.TextField(null=True), db_persist=True
    )
    tool = models.GeneratedField(
        expression=KeyTextTransform("tool", "data"), output_field=models.TextField(null=True), db_persist=True
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("review_auditevent", "Can review and export the audit log")]
        # Every filter of the review pages has an index ending in the keyset order (created_at, id).
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(fields=["created_at", "id"], include=["outcome"], name="audit_time_idx"),
            models.Index(fields=["outcome", "created_at", "id"], name="audit_outcome_time_idx"),
            models.Index(fields=["category", "created_at", "id"], name="audit_category_time_idx"),
            models.Index(Upper("actor_label"), "created_at", "id", name="audit_actor_label_time_idx"),
            models.Index(fields=["actor_id", "created_at", "id"], name="audit_actor_id_time_idx"),
            models.Index(
                fields=["tool", "created_at", "id"], condition=Q(tool__isnull=False), name="audit_tool_time_idx"
            ),
            models.Index(
                fields=["application", "created_at", "id"],
                condition=Q(application__isnull=False),
                name="audit_application_time_idx",
            ),
            models.Index(
                fields=["created_at"],
                include=["application", "tool"],
                condition=Q(outcome="deny"),
                name="audit_denied_time_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or self.actor_type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("changed")
        from audit import chain

        # The chain lock is transaction-scoped: take it, link and insert in one transaction (the caller's
        # when there is one, so the lock is held until it commits and the next writer sees this row).
        with transaction.atomic(using=kwargs.get("using"), savepoint=False):
            chain.link(self)
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")

    @property
    def trace_id(self) -> str:
        """The OpenTelemetry trace of the request behind the event (kept as ``data["trace_id"]``), or ""."""
        value = self.data.get("trace_id") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) and _TRACE_ID.fullmatch(value) else ""

    @property
    def trace_url(self) -> str:
        """The trace in the operator's tracing UI (`AUDIT_TRACE_URL`), or "" when either is missing."""
        template = settings.AUDIT_TRACE_URL
        return template.replace("{trace_id}", self.trace_id) if template and self.trace_id else ""


_TRACE_ID = re.compile(r"[0-9a-f]{32}")

# What `insert_linked` writes: every stored column but the id and the generated ones (checked by a test).
COPY_COLUMNS = (*HASHED_FIELDS, "hash")


class AuditCheckpoint(models.Model):
    """The chain state where archived events end: the next event in the database links to `hash`.

    Written by retention just before it deletes the archived events; append-only like the events."""

    seq = models.BigIntegerField(unique=True, help_text="Chain position of the last archived event.")
    hash = models.CharField(max_length=64, help_text="Hash of the last archived event.")
    last_created_at = models.DateTimeField(help_text="Time of the last archived event.")
    first_seq = models.BigIntegerField(help_text="Chain position of the first event in the archive.")
    first_prev_hash = models.CharField(max_length=64, help_text="The hash the first archived event links to.")
    event_count = models.PositiveIntegerField()
    archive_file = models.CharField(max_length=500, help_text="Path of the gzip JSON Lines archive.")
    archive_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the archive file.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"checkpoint at event {self.seq} ({self.event_count} archived)"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")


def _default_retention_days() -> int:
    return int(settings.AUDIT_RETENTION_DAYS)


class AuditSettings(models.Model):
    """This schema's audit settings (one row): how long events stay in the database before archiving."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    retention_days = models.PositiveIntegerField(
        default=_default_retention_days,
        validators=[MaxValueValidator(36500)],
        help_text="Events older than this many days are archived (gzip JSON Lines) and then deleted from the "
        "database. 0 keeps every event in the database.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "audit settings"
        verbose_name_plural = "audit settings"
        constraints = [models.CheckConstraint(condition=Q(singleton=True), name="audit_settings_singleton")]

    def __str__(self) -> str:
        return "Audit settings"

    @classmethod
    def load(cls) -> AuditSettings:
        """The row of the current schema, created with the defaults on first use."""
        settings_row, _ = cls.objects.get_or_create(singleton=True)
        return settings_row


class AuditSinkQuerySet(models.QuerySet["AuditSink"]):
    def due(self, now: Any = None) -> AuditSinkQuerySet:
        """Enabled sinks whose backoff has passed and that are behind this schema's newest event."""
        now = now or timezone.now()
        newest = AuditEvent.objects.order_by("-seq").values("seq")[:1]
        return self.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            is_enabled=True,
            cursor_seq__lt=models.Subquery(newest),
        )


class AuditSink(models.Model):
    """A SIEM this schema's audit events are streamed to, in chain order, at least once (`audit.streaming`).

    The admin sets the destination; the delivery state below it (cursor, status, errors) is written only by
    the stream. Secrets (the webhook's HMAC key, an OTLP authorization header) live in Vault at
    `secret_path`; the row never holds them."""

    class Kind(models.TextChoices):
        SYSLOG = "syslog", "Syslog (RFC 5424 over TCP or TLS)"
        WEBHOOK = "webhook", "HTTPS webhook (batched JSON, HMAC-SHA256 signed)"
        OTLP = "otlp", "OTLP logs (OTLP/HTTP)"

    class Transport(models.TextChoices):
        TLS = "tls", "TLS (RFC 5425)"
        TCP = "tcp", "Plain TCP (RFC 6587; trusted networks only)"

    class Encoding(models.TextChoices):
        PROTOBUF = "protobuf", "Protobuf (application/x-protobuf)"
        JSON = "json", "JSON (application/json)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Delivering"
        RETRYING = "retrying", "Retrying"
        DEAD_LETTER = "dead_letter", "Dead letter"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    is_enabled = models.BooleanField(
        default=True, help_text="Disabled sinks keep their place; enabling one again sends what it missed."
    )
    host = models.CharField(max_length=255, blank=True, help_text="Syslog: the receiver's host name or address.")
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(65535)], help_text="Syslog: e.g. 6514 (TLS), 601 (TCP)."
    )
    transport = models.CharField(max_length=8, choices=Transport.choices, default=Transport.TLS)
    url = models.URLField(
        max_length=500, blank=True, help_text="Webhook and OTLP: the https URL (OTLP: e.g. https://collector/v1/logs)."
    )
    otlp_encoding = models.CharField(max_length=16, choices=Encoding.choices, default=Encoding.PROTOBUF)
    ca_certificate = models.TextField(
        blank=True,
        help_text="PEM certificate(s) of the CA that signed the receiver's certificate, trusted instead of the "
        "system's CAs (a private SIEM CA). Empty: the system's CAs.",
    )
    batch_size = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(1000)], help_text="Events per delivery."
    )
    secret_path = models.CharField(max_length=300, blank=True, editable=False)
    secret_version = models.PositiveIntegerField(default=0, editable=False)
    # Delivery state, written by audit.streaming.delivery only.
    cursor_seq = models.BigIntegerField(default=0, editable=False, help_text="Last event delivered (chain seq).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, editable=False)
    failure_count = models.PositiveIntegerField(default=0, editable=False, help_text="Consecutive failed attempts.")
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_delivered_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    delivered_count = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AuditSinkQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "SIEM sink"
        verbose_name_plural = "SIEM sinks"

    def __str__(self) -> str:
        return self.name

    @property
    def destination(self) -> str:
        if self.kind == self.Kind.SYSLOG:
            return f"syslog+{self.transport}://{self.host}:{self.port}"
        return self.url
