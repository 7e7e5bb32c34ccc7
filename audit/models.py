"""The append-only audit log of a schema (each tenant has its own; the public schema logs platform actions).

Rows are written only through `audit.record`. They cannot be changed or deleted through a model, a
queryset or the admin, and a database trigger refuses UPDATE and DELETE as well, so a bug elsewhere in
the code cannot rewrite history. (Retention, a later feature, purges through an explicit database switch.)
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


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

    def _raw_delete(self, using: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")

    def for_actor(self, actor_id: str) -> AuditEventQuerySet:
        return self.filter(actor_id=actor_id)


class AuditEvent(models.Model):
    """One thing that happened: who (actor snapshot), what (action), to what (target), with what result."""

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

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=128, blank=True, db_index=True)
    actor_label = models.CharField(max_length=255, blank=True, help_text="The actor's name at the time of the event.")
    action = models.CharField(max_length=100, db_index=True, help_text='Dotted name, e.g. "tenant.created".')
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or self.actor_type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditLogIsAppendOnly("deleted")
