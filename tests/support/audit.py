"""Waiting for audit events that a live server writes off the request path (`audit.enqueue`: the MCP endpoint's
events, the token endpoint's issuance events), at most a few hundred milliseconds after the answer."""

from __future__ import annotations

import time
from typing import Any

from django_tenants.utils import schema_context

from audit.models import AuditEvent


def wait_for_event(schema: str = "tenant_acme", seconds: float = 10, **filters: Any) -> AuditEvent:
    """The newest event of `schema` matching `filters`, once the pipeline has written it; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        with schema_context(schema):
            event = AuditEvent.objects.filter(**filters).order_by("-seq").first()
        if event is not None:
            return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit event {filters} in {schema} after {seconds} s")
        time.sleep(0.1)
