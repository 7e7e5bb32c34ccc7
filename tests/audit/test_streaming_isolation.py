"""A sink whose receiver is stuck never slows audit writes or MCP tool calls: delivery runs beside them (in Celery),
holds nothing they wait for, and they finish while it is still blocked on the receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

import audit
from audit.models import AuditEvent, AuditSink
from audit.streaming import services
from audit.streaming.delivery import DeliveryResult, deliver
from tests.support.live import LiveServer
from tests.support.mcp import Committed, call, commit_in, text, url
from tests.support.siem import SyslogReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stream_settings")]

STUCK_FOR = 30  # the sink's timeout: far longer than anything below may take


def _wait_for(condition: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def test_a_stuck_sink_delays_neither_audit_writes_nor_tool_calls(
    asgi_server: LiveServer, committed: Committed, tokens: Callable[[str], str]
) -> None:
    token = tokens("alice@acme.test")
    receiver = SyslogReceiver()
    receiver.mode = "hang"  # accepts, then never reads and never closes
    receiver.start()

    def make_sink() -> int:
        sink = AuditSink.objects.create(
            name="stuck-siem", kind="syslog", host="127.0.0.1", port=receiver.port, transport="tcp",
            cursor_seq=services.starting_cursor("new"),
        )  # fmt: skip
        audit.record("tests", "tests.before_the_outage")
        return sink.pk

    sink_id = commit_in("tenant_acme", make_sink)
    outcome: dict[str, DeliveryResult] = {}

    def celery_worker() -> None:
        try:
            with schema_context("tenant_acme"):
                outcome["result"] = deliver(sink_id, force=True)
        finally:
            connections.close_all()

    worker = threading.Thread(target=celery_worker)
    try:
        with override_settings(AUDIT_SINK_TIMEOUT=STUCK_FOR):
            worker.start()
            assert _wait_for(lambda: receiver.accepted, 10), "the delivery reached the receiver"

            started = time.monotonic()
            commit_in("tenant_acme", lambda: audit.record("tests", "tests.during_the_outage"))
            record_took = time.monotonic() - started

            called_at = timezone.now()
            started = time.monotonic()
            result = call(url(asgi_server), token, "calculator", {"operation": "add", "a": 1, "b": 2})
            call_took = time.monotonic() - started

            def tool_event() -> bool:
                with schema_context("tenant_acme"):
                    return AuditEvent.objects.filter(
                        action="mcp.tool_call", tool="calculator", created_at__gte=called_at
                    ).exists()

            event_written = _wait_for(tool_event, 10)
            still_stuck = worker.is_alive()
    finally:
        receiver.stop()  # the receiver drops the unread batch: the delivery fails (a reset), as in a real outage
        worker.join(STUCK_FOR + 10)
        commit_in("tenant_acme", lambda: AuditSink.objects.filter(pk=sink_id).delete())

    assert "3" in text(result)
    assert event_written, "the tool call's audit event was written while the sink was stuck"
    assert still_stuck, "all of the above happened while the delivery was still blocked on the receiver"
    assert record_took < 2.0 and call_took < 10.0, (record_took, call_took)
    assert outcome["result"].outcome == "failed", "an unread batch is never counted as delivered"
