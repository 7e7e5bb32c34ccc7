"""SIEM sinks of the audit stream (audit.streaming): in every schema, like the rest of the audit app; each tenant's
dashboard configures its own, and their secrets live in the tenant's Vault subtree."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_drop_unused_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditSink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("syslog", "Syslog (RFC 5424 over TCP or TLS)"),
                            ("webhook", "HTTPS webhook (batched JSON, HMAC-SHA256 signed)"),
                            ("otlp", "OTLP logs (OTLP/HTTP)"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "is_enabled",
                    models.BooleanField(
                        default=True,
                        help_text="Disabled sinks keep their place; enabling one again sends what it missed.",
                    ),
                ),
                (
                    "host",
                    models.CharField(
                        blank=True, help_text="Syslog: the receiver's host name or address.", max_length=255
                    ),
                ),
                (
                    "port",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="Syslog: e.g. 6514 (TLS), 601 (TCP).",
                        null=True,
                        validators=[django.core.validators.MaxValueValidator(65535)],
                    ),
                ),
                (
                    "transport",
                    models.CharField(
                        choices=[("tls", "TLS (RFC 5425)"), ("tcp", "Plain TCP (RFC 6587; trusted networks only)")],
                        default="tls",
                        max_length=8,
                    ),
                ),
                (
                    "url",
                    models.URLField(
                        blank=True,
                        help_text="Webhook and OTLP: the https URL (OTLP: e.g. https://collector/v1/logs).",
                        max_length=500,
                    ),
                ),
                (
                    "otlp_encoding",
                    models.CharField(
                        choices=[
                            ("protobuf", "Protobuf (application/x-protobuf)"),
                            ("json", "JSON (application/json)"),
                        ],
                        default="protobuf",
                        max_length=16,
                    ),
                ),
                (
                    "ca_certificate",
                    models.TextField(
                        blank=True,
                        help_text="PEM certificate(s) of the CA that signed the receiver's certificate, trusted instead of the system's CAs (a private SIEM CA). Empty: the system's CAs.",
                    ),
                ),
                (
                    "batch_size",
                    models.PositiveIntegerField(
                        default=100,
                        help_text="Events per delivery.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(1000),
                        ],
                    ),
                ),
                ("secret_path", models.CharField(blank=True, editable=False, max_length=300)),
                ("secret_version", models.PositiveIntegerField(default=0, editable=False)),
                (
                    "cursor_seq",
                    models.BigIntegerField(default=0, editable=False, help_text="Last event delivered (chain seq)."),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("active", "Delivering"), ("retrying", "Retrying"), ("dead_letter", "Dead letter")],
                        default="active",
                        editable=False,
                        max_length=16,
                    ),
                ),
                (
                    "failure_count",
                    models.PositiveIntegerField(default=0, editable=False, help_text="Consecutive failed attempts."),
                ),
                ("last_error", models.CharField(blank=True, editable=False, max_length=500)),
                ("last_error_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_delivered_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("next_attempt_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("delivered_count", models.BigIntegerField(default=0, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "SIEM sink",
                "verbose_name_plural": "SIEM sinks",
                "ordering": ["name"],
            },
        ),
    ]
