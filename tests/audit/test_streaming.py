"""The audit stream to SIEMs, against real receivers started here: a TCP and a TLS syslog server (certificate from a
CA made at run time), an HTTPS webhook receiver that checks the HMAC, and an OTLP/HTTP receiver that decodes the
protobuf. Delivery runs as Celery runs it (`audit.streaming.delivery.deliver` in the tenant's schema)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

import audit
from audit import chain
from audit.models import AuditEvent, AuditSettings, AuditSink
from audit.retention import archive_expired_events
from audit.streaming import ocsf, secret, services
from audit.streaming.delivery import backoff, deliver
from audit.tasks import stream_due_sinks
from authsec_site.celery import app
from authsec_site.lib import vault
from tenants.models import Tenant
from tests.support.siem import HTTPSReceiver, SiemCA, SyslogReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stream_settings")]

SECRET = "whsec-" + "k" * 40
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SYSLOG_LINE = re.compile(
    r"<(?P<pri>\d+)>1 (?P<time>\S+) (?P<host>\S+) authsec - (?P<msgid>\S+) "
    r"\[authsec@32473 (?P<sd>[^\]]*)\] \ufeff(?P<json>\{.*\})$",
    re.S,
)


@pytest.fixture
def acme_schema(acme: Tenant) -> Iterator[Tenant]:
    with schema_context(acme.schema_name):
        yield acme


def make_sink(kind: str, **fields: Any) -> AuditSink:
    """A sink that starts after the newest event (as the dashboard's default does)."""
    return AuditSink.objects.create(
        name=f"{kind}-{uuid.uuid4().hex[:8]}", kind=kind, cursor_seq=services.starting_cursor("new"), **fields
    )


def write_events(count: int, **data: Any) -> list[AuditEvent]:
    return [audit.record("tests", "tests.streamed", data={"n": n, **data}) for n in range(count)]


def stored(seq_from: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gte=seq_from).order_by("seq"))


def assert_is_the_chain(documents: list[dict[str, Any]], events: list[AuditEvent]) -> None:
    """The documents are exactly these events, in chain order, and each re-hashes to its hash."""
    assert [d["seq"] for d in documents] == [e.seq for e in events]
    for document, event in zip(documents, events, strict=True):
        assert document["hash"] == event.hash and document["prev_hash"] == event.prev_hash
        assert chain.compute_hash(document, created_at=document["created_at"]) == event.hash
    for before, after in zip(documents, documents[1:], strict=False):
        assert after["prev_hash"] == before["hash"]


def first_copies(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At least once: a resent batch may repeat events; a SIEM keeps the first copy of each seq."""
    seen: set[int] = set()
    return [d for d in documents if not (d["seq"] in seen or seen.add(d["seq"]))]  # type: ignore[func-returns-value]


def syslog_documents(receiver: SyslogReceiver) -> list[dict[str, Any]]:
    documents = []
    for message in receiver.messages:
        match = SYSLOG_LINE.match(message.decode())
        assert match, message[:200]
        documents.append(json.loads(match["json"]))
    return documents


# --- syslog ---------------------------------------------------------------------------------------------------------


def test_syslog_over_tcp_sends_rfc5424_messages_in_chain_order_with_their_hashes(acme_schema: Tenant) -> None:
    receiver = SyslogReceiver().start()
    try:
        sink = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp")
        first = write_events(4)[0]
        audit.record("tests", "tests.denied", outcome="deny", data={"trace_id": TRACE})
        result = deliver(sink.pk)
    finally:
        receiver.stop()
    assert result.outcome == "caught_up" and result.delivered == 5
    events = stored(first.seq)
    documents = syslog_documents(receiver)
    assert_is_the_chain(documents, events)
    header = SYSLOG_LINE.match(receiver.messages[-1].decode())
    assert header is not None
    assert header["pri"] == "108" and header["msgid"] == "tests.denied"  # log audit (13) * 8 + warning (4)
    assert f'seq="{events[-1].seq}"' in header["sd"] and f'hash="{events[-1].hash}"' in header["sd"]
    assert f'traceId="{TRACE}"' in header["sd"] and 'tenant="acme"' in header["sd"]
    assert SYSLOG_LINE.match(receiver.messages[0].decode())["pri"] == "109"  # type: ignore[index]  # notice
    last = documents[-1]
    assert last["tenant"] == "acme" and last["trace_id"] == TRACE and documents[0]["trace_id"] is None
    assert {"actor_type", "actor_id", "actor_label", "action", "target_type", "target_id", "target_label",
            "outcome", "ip", "user_agent", "request_id"} <= set(last)  # fmt: skip
    assert last["ocsf"]["class_uid"] == 6003 and last["ocsf"]["status_id"] == 2
    sink.refresh_from_db()
    assert sink.cursor_seq == events[-1].seq and sink.status == "active" and sink.delivered_count == 5


def test_syslog_over_tls_trusts_the_sinks_own_ca_and_nothing_else(acme_schema: Tenant, siem_ca: SiemCA) -> None:
    receiver = SyslogReceiver(tls=siem_ca.server_context()).start()
    try:
        trusted = make_sink(
            AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tls", ca_certificate=siem_ca.ca_pem
        )
        other_ca = make_sink(
            AuditSink.Kind.SYSLOG,
            host="127.0.0.1",
            port=receiver.port,
            transport="tls",
            ca_certificate=SiemCA("another CA").ca_pem,
        )
        system_cas = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tls")
        first = write_events(3)[0]
        assert deliver(trusted.pk).delivered == 3
        refused = [deliver(other_ca.pk), deliver(system_cas.pk)]
    finally:
        receiver.stop()
    assert_is_the_chain(syslog_documents(receiver), stored(first.seq)[:3])
    for result, sink in zip(refused, (other_ca, system_cas), strict=True):
        assert result.outcome == "failed" and "TLS failed" in result.error
        sink.refresh_from_db()
        assert sink.cursor_seq == first.seq - 1 and sink.status == "retrying" and sink.failure_count == 1


def test_syslog_outage_and_a_crash_mid_batch_lose_nothing_and_keep_the_order(acme_schema: Tenant) -> None:
    receiver = SyslogReceiver().start()
    sink = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp", batch_size=3)
    first = write_events(4)[0]
    assert deliver(sink.pk).delivered == 4

    receiver.stop()  # down: connections are refused
    write_events(2)
    down = deliver(sink.pk)
    assert down.outcome == "failed" and "could not connect" in down.error
    assert deliver(sink.pk).outcome == "waiting", "a failed sink backs off before it tries again"

    receiver.mode = "reset"  # up again, but it reads a batch and crashes before keeping it
    receiver.start()
    crashed = deliver(sink.pk, force=True)
    assert crashed.outcome == "failed" and "connection failed" in crashed.error
    sink.refresh_from_db()
    assert sink.failure_count == 2 and sink.cursor_seq == first.seq + 3, "an unconfirmed batch is not counted"

    receiver.mode = "ok"
    write_events(3)
    recovered = deliver(sink.pk, force=True)
    receiver.stop()
    assert recovered.outcome == "caught_up"
    assert_is_the_chain(first_copies(syslog_documents(receiver)), stored(first.seq))
    sink.refresh_from_db()
    assert sink.status == "active" and sink.failure_count == 0 and sink.last_error.startswith("syslog 127.0.0.1")


# --- HTTPS webhook --------------------------------------------------------------------------------------------------


def set_secret(sink: AuditSink, value: str) -> None:
    """The sink's secret in Vault, set up without an audit event (its stream starts empty)."""
    sink.secret_version = secret.write(sink, value)
    sink.save(update_fields=["secret_path", "secret_version"])


def webhook_sink(receiver: HTTPSReceiver, ca: SiemCA, **fields: Any) -> AuditSink:
    sink = make_sink(AuditSink.Kind.WEBHOOK, url=f"{receiver.url}/hook", ca_certificate=ca.ca_pem, **fields)
    set_secret(sink, SECRET)
    return sink


def test_webhook_sends_signed_json_batches_and_keeps_the_secret_in_vault_only(
    acme_schema: Tenant, siem_ca: SiemCA, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = HTTPSReceiver(siem_ca, SECRET).start()
    try:
        sink = webhook_sink(receiver, siem_ca, batch_size=2)
        first = write_events(5)[0]
        result = deliver(sink.pk)
    finally:
        receiver.stop()
    assert result.delivered == 5 and receiver.bad_signatures == 0
    assert [(b["first_seq"], b["last_seq"]) for b in receiver.batches] == [
        (first.seq, first.seq + 1), (first.seq + 2, first.seq + 3), (first.seq + 4, first.seq + 4)
    ]  # fmt: skip
    assert receiver.batches[0]["tenant"] == "acme" and receiver.batches[0]["format"] == "authsec-audit-batch/1"
    assert receiver.headers[0]["X-AuthSec-Delivery"] == f"acme:{sink.pk}:{first.seq}-{first.seq + 1}"
    assert_is_the_chain(receiver.events(), stored(first.seq))
    # The secret: in Vault, at the row's path; nowhere in the row, the log of events, or the logs.
    sink.refresh_from_db()
    data, version = vault.tenant_kv_read(connection.schema_name, sink.secret_path, sink.secret_version)
    assert data == {"value": SECRET} and version == sink.secret_version == 1
    row = AuditSink.objects.filter(pk=sink.pk).values().get()
    assert SECRET not in json.dumps(row, default=str)
    assert not AuditEvent.objects.filter(data__icontains=SECRET).exists()
    assert SECRET not in caplog.text


def test_a_receiver_with_another_secret_refuses_the_batches_and_nothing_is_counted(
    acme_schema: Tenant, siem_ca: SiemCA
) -> None:
    receiver = HTTPSReceiver(siem_ca, "a-different-secret-" + "x" * 30).start()
    try:
        sink = webhook_sink(receiver, siem_ca)
        write_events(2)
        result = deliver(sink.pk)
    finally:
        receiver.stop()
    assert result.outcome == "failed" and result.error == "webhook: the receiver answered HTTP 401"
    assert receiver.bad_signatures == 1 and receiver.batches == []
    assert SECRET not in result.error


def test_webhook_outage_then_recovery_loses_nothing_and_keeps_the_order(acme_schema: Tenant, siem_ca: SiemCA) -> None:
    receiver = HTTPSReceiver(siem_ca, SECRET).start()
    sink = webhook_sink(receiver, siem_ca, batch_size=4)
    first = write_events(3)[0]
    assert deliver(sink.pk).delivered == 3

    receiver.status = 503  # the SIEM answers, but does not accept
    write_events(2)
    assert deliver(sink.pk).error == "webhook: the receiver answered HTTP 503"
    receiver.stop()  # then it is gone altogether
    write_events(2)
    assert "could not be reached" in deliver(sink.pk, force=True).error
    third = deliver(sink.pk, force=True)  # AUDIT_SINK_DEAD_LETTER_AFTER=3 in these tests
    sink.refresh_from_db()
    assert third.outcome == "failed" and sink.status == "dead_letter" and sink.failure_count == 3
    dead = AuditEvent.objects.filter(action="audit.sink_dead_lettered").latest("seq")
    assert dead.outcome == "failure" and dead.data["sink"] == sink.name and dead.data["failures"] == 3
    assert dead.target_id == str(sink.pk) and "could not be reached" in dead.data["error"]
    assert deliver(sink.pk).outcome == "waiting"

    receiver.status = 200
    receiver.start()
    write_events(3)
    recovered = deliver(sink.pk, force=True)
    receiver.stop()
    assert recovered.outcome == "caught_up"
    # Every event, the dead-letter and recovery events included, exactly once (nothing was accepted twice), in order.
    assert_is_the_chain(receiver.events(), stored(first.seq))
    sink.refresh_from_db()
    assert sink.status == "active" and sink.cursor_seq == stored(first.seq)[-1].seq
    recovered_event = AuditEvent.objects.get(action="audit.sink_recovered", target_id=str(sink.pk))
    assert recovered_event.data["failures"] == 3 and receiver.events()[-1]["action"] == "audit.sink_recovered"


# --- OTLP logs ------------------------------------------------------------------------------------------------------


def test_otlp_protobuf_log_records_carry_the_event_fields_and_trace_id(acme_schema: Tenant, siem_ca: SiemCA) -> None:
    receiver = HTTPSReceiver(siem_ca).start()
    try:
        sink = make_sink(AuditSink.Kind.OTLP, url=f"{receiver.url}/v1/logs", ca_certificate=siem_ca.ca_pem)
        set_secret(sink, "Bearer otlp-ingest-token")
        first = audit.record("tests", "tests.allowed", outcome="allow", data={"trace_id": TRACE})
        audit.record("tests", "tests.denied", outcome="deny")
        assert deliver(sink.pk).delivered == 2
    finally:
        receiver.stop()
    assert receiver.headers[0]["Authorization"] == "Bearer otlp-ingest-token"
    (request,) = receiver.otlp
    (resource_logs,) = request.resource_logs
    resource = {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes}
    assert resource == {"service.name": "authsec-server", "authsec.tenant": "acme"}
    records = resource_logs.scope_logs[0].log_records
    assert [r.event_name for r in records] == ["tests.allowed", "tests.denied"]
    assert records[0].trace_id.hex() == TRACE and records[1].trace_id == b""
    assert records[0].severity_number == SeverityNumber.SEVERITY_NUMBER_INFO
    assert records[1].severity_number == SeverityNumber.SEVERITY_NUMBER_WARN
    attributes = {kv.key: kv.value for kv in records[0].attributes}
    assert attributes["authsec.audit.seq"].int_value == first.seq
    assert attributes["authsec.audit.hash"].string_value == first.hash
    assert json.loads(records[0].body.string_value)["hash"] == first.hash
    assert records[0].time_unix_nano // 1000 == int(first.created_at.timestamp() * 1_000_000)


def test_otlp_json_uses_hex_trace_ids_and_integer_enums(acme_schema: Tenant, siem_ca: SiemCA) -> None:
    receiver = HTTPSReceiver(siem_ca).start()
    try:
        sink = make_sink(
            AuditSink.Kind.OTLP, url=f"{receiver.url}/v1/logs", ca_certificate=siem_ca.ca_pem, otlp_encoding="json"
        )
        event = audit.record("tests", "tests.allowed", outcome="allow", data={"trace_id": TRACE})
        assert deliver(sink.pk).delivered == 1
    finally:
        receiver.stop()
    (body,) = receiver.otlp_json
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == TRACE and record["severityNumber"] == 9 and record["eventName"] == "tests.allowed"
    assert json.loads(record["body"]["stringValue"])["seq"] == event.seq
    assert receiver.headers[0]["Content-Type"] == "application/json"
    # And the same body read back by the protobuf library (base64 ids aside) is a valid request.
    record["traceId"] = ""
    assert json_format.ParseDict(body, ExportLogsServiceRequest()).resource_logs[0].scope_logs[0].log_records


# --- what Celery runs -----------------------------------------------------------------------------------------------


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Queued tasks run at once in this process (and this test's transaction), as a worker would run them."""
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def test_beat_delivers_to_the_sinks_that_are_due_and_behind(acme_schema: Tenant, eager_celery: None) -> None:
    receiver = SyslogReceiver().start()
    try:
        due = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp")
        disabled = make_sink(
            AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp", is_enabled=False
        )
        write_events(2)
        waiting = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp")
        AuditSink.objects.filter(pk=waiting.pk).update(cursor_seq=0, next_attempt_at="2999-01-01T00:00:00Z")
        queued = stream_due_sinks()
        assert stream_due_sinks() == {}, "a caught-up sink is not queued"
    finally:
        receiver.stop()
    assert queued == {"tenant_acme": [due.pk]}
    assert len(receiver.messages) == 2
    disabled.refresh_from_db()
    assert disabled.cursor_seq < due.cursor_seq + 2


def test_events_go_out_in_order_after_they_commit_only(acme_schema: Tenant) -> None:
    """A delivery on another connection sees committed events only; an event appears after its writer commits."""
    import threading

    from tests.support.mcp import commit_in

    receiver = SyslogReceiver().start()
    sink_id = commit_in(
        "tenant_acme",
        lambda: make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp").pk,
    )
    written, release = threading.Event(), threading.Event()

    def writer() -> None:
        from django.db import connections, transaction

        try:
            with schema_context("tenant_acme"), transaction.atomic():
                audit.record("tests", "tests.slow_commit")
                written.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        assert written.wait(10)
        before = commit_in("tenant_acme", lambda: deliver(sink_id))
        assert before.delivered == 0 and receiver.messages == []
        release.set()
        thread.join(10)
        after = commit_in("tenant_acme", lambda: deliver(sink_id))
        assert after.delivered == 1
        assert syslog_documents(receiver)[0]["action"] == "tests.slow_commit"
    finally:
        release.set()
        thread.join(10)
        receiver.stop()
        commit_in("tenant_acme", lambda: AuditSink.objects.filter(pk=sink_id).delete())


def test_events_archived_before_delivery_are_reported_as_a_gap(acme_schema: Tenant, archive_dir: Any) -> None:
    import datetime as dt

    receiver = SyslogReceiver().start()
    try:
        sink = make_sink(AuditSink.Kind.SYSLOG, host="127.0.0.1", port=receiver.port, transport="tcp")
        first = write_events(3)[0]
        AuditSettings.objects.filter(pk=AuditSettings.load().pk).update(retention_days=1)
        archived = archive_expired_events(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
        assert archived is not None and archived.last_seq >= first.seq + 2
        result = deliver(sink.pk)
    finally:
        receiver.stop()
    gap = AuditEvent.objects.get(action="audit.stream_gap")
    assert gap.outcome == "failure" and gap.data["first_missing"] == first.seq
    assert gap.data["last_missing"] == archived.last_seq and gap.data["archives"] == [
        archived.archive_file.rsplit("/", 1)[-1]
    ]
    documents = syslog_documents(receiver)
    assert [d["action"] for d in documents] == ["audit.archived", "audit.stream_gap"]
    assert result.outcome == "caught_up"


# --- small parts ----------------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    from django.test import override_settings

    with override_settings(AUDIT_SINK_RETRY_MAX=60):
        assert 1.6 <= backoff(1) <= 2.0 and 3.2 <= backoff(2) <= 4.0 and 12.8 <= backoff(4) <= 16.0
        assert 48.0 <= backoff(10) <= 60.0 and backoff(500) <= 60.0


@pytest.mark.parametrize(
    ("action", "outcome", "class_uid", "activity_id", "status_id"),
    [
        ("auth.login_succeeded", "success", 3002, 1, 1),
        ("auth.login_failed", "failure", 3002, 1, 2),
        ("auth.lockout", "deny", 3001, 9, 2),
        ("rbac.role_granted", "success", 3005, 1, 1),
        ("rbac.member_removed", "success", 3006, 4, 1),
        ("rbac.role_changed", "success", 3004, 3, 1),
        ("rbac.tool_policy_deleted", "success", 3004, 4, 1),
        ("service.secret_created", "success", 3004, 1, 1),
        ("mcp.tool_call", "deny", 6003, 99, 2),
        ("oauth.token_issued", "success", 3002, 4, 1),
    ],
)
def test_ocsf_classes(action: str, outcome: str, class_uid: int, activity_id: int, status_id: int) -> None:
    found = ocsf.classify(action, outcome)
    assert (found["class_uid"], found["activity_id"], found["status_id"]) == (class_uid, activity_id, status_id)
    assert found["type_uid"] == class_uid * 100 + activity_id and found["category_uid"] == class_uid // 1000
