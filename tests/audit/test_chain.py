"""The per-tenant hash chain: linking, canonical content, concurrent writers, and detection of tampering."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import logging
import threading
import uuid

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, transaction
from django_tenants.utils import schema_context

import audit
from audit import chain
from audit.models import AuditEvent, AuditLogIsAppendOnly
from audit.tasks import verify_chains, verify_schema_chain
from audit.verify import verify_chain, verify_event
from authsec_site.celery import app as celery_app
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def _tamper(sql: str, params: list) -> None:  # type: ignore[type-arg]
    """Edit rows as someone with raw database access would: the table owner switches the guard off first."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def _three_events() -> list[AuditEvent]:
    return [audit.record("tests", "test.chain", data={"n": n}) for n in range(3)]


def test_each_event_links_to_the_one_before_it(in_acme: Tenant) -> None:
    first, second, third = _three_events()
    assert (second.seq, third.seq) == (first.seq + 1, first.seq + 2)
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    for event in (first, second, third):
        stored = AuditEvent.objects.get(pk=event.pk)
        assert stored.hash == chain.event_hash(stored) == event.hash
        assert len(stored.hash) == 64
    assert verify_chain().ok


def test_each_tenant_has_its_own_chain(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        in_acme = audit.record("tests", "test.chain")
        acme_head = AuditEvent.objects.order_by("-seq").first()
    with schema_context(globex.schema_name):
        in_globex = audit.record("tests", "test.chain")
        assert in_globex.prev_hash != in_acme.hash
        assert verify_chain().ok
    assert acme_head is not None and acme_head.pk == in_acme.pk


def test_canonical_content_is_sorted_compact_json_with_microseconds() -> None:
    fields = {
        "seq": 7,
        "prev_hash": "a" * 64,
        "created_at": dt.datetime(2026, 11, 22, 10, 0, 0, 5, tzinfo=dt.UTC),
        "actor_type": "user",
        "actor_id": "3",
        "actor_label": "zoë@acme.test",
        "action": "rbac.role_granted",
        "outcome": "success",
        "target_type": "rbac.rolebinding",
        "target_id": "9",
        "target_label": "developer → bob",
        "data": {"b": [1, 2.5], "a": None},
        "request_id": "req-1",
        "ip": "2001:DB8:0:0::1",
        "user_agent": "ua",
    }
    expected = (
        '{"action":"rbac.role_granted","actor_id":"3","actor_label":"zoë@acme.test","actor_type":"user",'
        '"created_at":"2026-11-22T10:00:00.000005+00:00","data":{"a":null,"b":[1,2.5]},"ip":"2001:db8::1",'
        '"outcome":"success","prev_hash":"' + "a" * 64 + '","request_id":"req-1","seq":7,"target_id":"9",'
        '"target_label":"developer → bob","target_type":"rbac.rolebinding","user_agent":"ua","v":1}'
    ).encode()
    assert chain.canonical_content(fields) == expected
    assert chain.compute_hash(fields) == hashlib.sha256(expected).hexdigest()


def test_hash_still_matches_after_a_round_trip_through_postgres(in_acme: Tenant) -> None:
    event = audit.record(
        "tests",
        "test.round_trip",
        data={
            "big": 1e300,
            "small": 1.5e-7,
            "minus_zero": -0.0,
            "int": 2**70,
            "when": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "text": 'émoji 🎉 "quoted" \\ back',
            "nested": {"z": [True, False, None], "a": {"b": "c"}},
        },
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.data == event.data
    assert chain.event_hash(stored) == stored.hash


class _Colour(str, enum.Enum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


ODD_DATA = {
    "plain": {"s": "x", "i": 1, "b": True, "n": None, "f": 0.25, "list": [1, 2.0, {"minus_zero": -0.0}]},
    "floats": [1e20, 1.5e-7, float("nan"), float("-inf")],
    "tuple": (1, (2, 3)),
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "amount": decimal.Decimal("1.50"),
    "str_enum": _Colour.RED,
    "int_enum": _Level.HIGH,
    "keys": {1: "int key", None: "null key", "deep": [{"t": ("a",)}]},
}


def test_normalised_data_is_what_the_json_round_trip_gives() -> None:
    """The one-pass normaliser copies plain JSON and sends anything else through Django's encoder: the result
    is exactly what encoding and decoding the whole value gives (and then what jsonb hands back)."""
    through_json = chain._json_safe(json.loads(DjangoJSONEncoder().encode(ODD_DATA)))
    normalised = chain.normalise_data(ODD_DATA)
    assert normalised == through_json
    assert json.dumps(normalised, sort_keys=True) == json.dumps(through_json, sort_keys=True)
    assert type(normalised["str_enum"]) is str and type(normalised["int_enum"]) is int
    assert normalised["keys"] == {"1": "int key", "null": "null key", "deep": [{"t": ["a"]}]}
    assert normalised["floats"] == [100000000000000000000, 1.5e-7, "nan", "-inf"]


def test_odd_values_hash_the_same_after_a_round_trip_through_postgres(in_acme: Tenant) -> None:
    event = audit.record("tests", "test.odd_values", data=ODD_DATA)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.data == event.data
    assert chain.event_hash(stored) == stored.hash


ODD_TEXT = 'zoë "quoted" \\ back\ttab\nline\r\x00\x1f \u2028 🎉 </script>'


def _linking_cases() -> list[dict]:
    base = {
        "seq": 2**40,
        "prev_hash": "f" * 64,
        "created_at": dt.datetime(2026, 11, 22, 10, 0, 0, 5, tzinfo=dt.UTC),
        "actor_type": "user",
        "actor_id": "3",
        "actor_label": ODD_TEXT,
        "action": "mcp.tool_call",
        "outcome": "allow",
        "target_type": "rbac.application",
        "target_id": "",
        "target_label": ODD_TEXT,
        "data": chain.normalise_data({**ODD_DATA, ODD_TEXT: ODD_TEXT}),
        "request_id": "req-1",
        "ip": "2001:DB8:0:0::1",
        "user_agent": ODD_TEXT,
    }
    odd_types = {"ip": None, "data": {}, "user_agent": "", "seq": 1, "actor_type": AuditEvent.ActorType.USER}
    return [base, {**base, **odd_types}]


@pytest.mark.parametrize("fields", _linking_cases())
def test_canonical_content_is_the_fields_as_one_sorted_dict(fields: dict) -> None:
    """`canonical_content` writes value by value, its data possibly encoded beforehand (linking encodes it once,
    then stores that text): byte for byte the hashed fields encoded as one dict with sorted keys."""
    created = chain.format_time(fields["created_at"])
    as_one_dict = {name: fields[name] for name in chain.HASHED_FIELDS}
    as_one_dict.update(created_at=created, ip=chain.normalise_ip(fields["ip"]), v=chain.CHAIN_VERSION)
    expected = json.dumps(as_one_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    data_text = chain.canonical_data(fields["data"])
    assert json.loads(data_text) == fields["data"]
    assert chain.canonical_content(fields, created, data_text) == expected
    assert chain.canonical_content(fields) == expected


def test_a_batch_of_odd_events_verifies_after_a_round_trip_through_postgres(in_acme: Tenant) -> None:
    """What `record_many` stores (its data as the JSON text it hashed) reads back to the same hash."""
    from audit.context import RequestContext
    from audit.recorder import Actor, Entry

    context = RequestContext(request_id=ODD_TEXT.replace("\x00", ""), ip="::1", user_agent=ODD_TEXT.replace("\x00", ""))
    label = ODD_TEXT.replace("\x00", "")  # Postgres text holds no NUL (in data, JSON escapes it)
    rows = audit.record_many(
        [Entry(Actor("user", "7", label), "test.odd_batch", target=("t", "1", label), data=ODD_DATA, context=context)]
        * 3
    )
    stored = list(AuditEvent.objects.filter(seq__gte=rows[0]["seq"]).order_by("seq"))
    assert [event.hash for event in stored] == [row["hash"] for row in rows]
    assert all(chain.event_hash(event) == event.hash for event in stored)
    assert stored[0].data == rows[0]["data"] and stored[0].actor_label == label
    assert verify_chain().broken is None


def test_time_order_is_chain_order(in_acme: Tenant) -> None:
    events = _three_events()
    times = [AuditEvent.objects.get(pk=event.pk).created_at for event in events]
    assert times == sorted(times)


def test_bulk_inserts_that_would_bypass_the_chain_are_refused(in_acme: Tenant) -> None:
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.bulk_create([AuditEvent(actor_type="system", action="test.bulk")])


def test_concurrent_writers_never_fork_the_chain(acme: Tenant) -> None:
    """Threads with their own connections append and commit at once; every event gets its own position."""
    threads, per_thread = 4, 15
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    marker = f"run-{threading.get_ident()}-{dt.datetime.now().timestamp()}"

    def writer(number: int) -> None:
        try:
            with schema_context(acme.schema_name):
                barrier.wait(timeout=10)
                for i in range(per_thread):
                    with transaction.atomic():
                        audit.record("tests", "test.concurrent", data={"marker": marker, "thread": number, "i": i})
                        # Hold the transaction (and the chain lock) a moment so the others must wait for it.
                        connection.cursor().execute("SELECT pg_sleep(0.002)")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    with schema_context(acme.schema_name):
        written = list(AuditEvent.objects.filter(data__marker=marker).order_by("seq"))
        assert len(written) == threads * per_thread
        seqs = [event.seq for event in written]
        assert len(set(seqs)) == len(seqs)
        prev_hashes = [event.prev_hash for event in written]
        assert len(set(prev_hashes)) == len(prev_hashes), "two events link to the same predecessor: a fork"
        # The writers interleaved (the lock serialised them, it did not run them one after the other).
        threads_in_order = [event.data["thread"] for event in written]
        assert any(a != b for a, b in zip(threads_in_order, threads_in_order[1:], strict=False))
        report = verify_chain()
        assert report.ok, report.summary()


def test_a_row_edited_with_raw_sql_is_detected(in_acme: Tenant) -> None:
    first, second, third = _three_events()
    _tamper("UPDATE audit_auditevent SET data = '{\"n\": 99}' WHERE id = %s", [second.pk])
    report = verify_chain()
    assert not report.ok
    assert report.broken is not None and report.broken.seq == second.seq and report.broken.event_id == second.pk
    assert "content changed" in report.broken.reason
    status = verify_event(AuditEvent.objects.get(pk=second.pk))
    assert not status.ok and not status.content_ok and status.link_ok
    assert verify_event(AuditEvent.objects.get(pk=first.pk)).ok


def test_a_rewritten_hash_is_detected_at_the_next_event(in_acme: Tenant) -> None:
    first, second, third = _three_events()
    forged = AuditEvent.objects.get(pk=second.pk)
    forged.data = {"n": 99}
    _tamper(
        "UPDATE audit_auditevent SET data = '{\"n\": 99}', hash = %s WHERE id = %s",
        [chain.event_hash(forged), second.pk],
    )
    report = verify_chain()
    assert report.broken is not None and report.broken.seq == third.seq
    assert "does not link" in report.broken.reason
    assert verify_event(AuditEvent.objects.get(pk=second.pk)).next_ok is False


def test_a_deleted_row_is_detected(in_acme: Tenant) -> None:
    first, second, third = _three_events()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL authsec.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [second.pk])
        cursor.execute("SET LOCAL authsec.audit_purge = 'off'")
    report = verify_chain()
    assert report.broken is not None and report.broken.seq == third.seq
    assert f"events {second.seq}..{second.seq} are missing" in report.broken.reason


def test_verify_audit_command_reports_ok_with_the_head(in_acme: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    last = _three_events()[-1]
    call_command("verify_audit", "acme")
    out = capsys.readouterr().out
    assert out.startswith("OK: schema tenant_acme:")
    assert f"head {last.seq} hash {last.hash}" in out


def test_verify_audit_command_names_the_first_broken_event(in_acme: Tenant) -> None:
    _, second, _ = _three_events()
    _tamper("UPDATE audit_auditevent SET actor_label = 'someone-else' WHERE id = %s", [second.pk])
    with pytest.raises(
        CommandError, match=rf"BROKEN: schema tenant_acme: first broken event {second.seq} \(id {second.pk}\)"
    ):
        call_command("verify_audit", "tenant_acme")


def test_verify_audit_command_rejects_an_unknown_tenant(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No tenant 'nosuch'"):
        call_command("verify_audit", "nosuch")


def test_verify_audit_all_reports_every_schema(in_acme: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    last = _three_events()[-1]
    call_command("verify_audit", "--all")
    lines = capsys.readouterr().out.splitlines()
    schemas = [line.split(":")[1].strip() for line in lines]
    assert all(line.startswith("OK: schema ") for line in lines)
    assert schemas[0] == "schema public" and {"schema tenant_acme", "schema tenant_globex"} <= set(schemas)
    assert f"head {last.seq} hash {last.hash}" in lines[schemas.index("schema tenant_acme")]


def test_verify_audit_all_fails_when_one_tenant_is_broken(in_acme: Tenant) -> None:
    _, second, _ = _three_events()
    _tamper("UPDATE audit_auditevent SET actor_label = 'someone-else' WHERE id = %s", [second.pk])
    with pytest.raises(CommandError, match=rf"BROKEN: schema tenant_acme: first broken event {second.seq}") as caught:
        call_command("verify_audit", "--all")
    assert caught.value.returncode == 1


def test_verify_audit_wants_one_tenant_or_all(db) -> None:  # type: ignore[no-untyped-def]
    for args in ((), ("acme", "--all")):
        with pytest.raises(CommandError, match="Name one tenant, or give --all"):
            call_command("verify_audit", *args)


def test_beat_verifies_every_schema_and_records_each_result(in_acme: Tenant) -> None:
    celery_app.finalize()
    entry = celery_app.conf.beat_schedule["audit-verify"]
    assert entry["task"] == "audit.tasks.verify_chains"
    assert entry["schedule"] == settings.AUDIT_VERIFY_INTERVAL == 24 * 3600
    last = _three_events()[-1]
    celery_app.conf.task_always_eager = True  # the per-schema tasks run here
    try:
        schemas = verify_chains.apply().get()
    finally:
        celery_app.conf.task_always_eager = False
    assert {"public", "tenant_acme", "tenant_globex"} <= set(schemas)
    recorded = AuditEvent.objects.filter(action="audit.chain_verified").latest("seq")
    assert recorded.outcome == "success" and recorded.actor_label == "audit-verify"
    assert recorded.data["last_seq"] == last.seq and recorded.data["head_hash"] == last.hash


def test_the_verification_task_records_and_logs_a_broken_chain(
    in_acme: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    _, second, _ = _three_events()
    _tamper("UPDATE audit_auditevent SET actor_label = 'someone-else' WHERE id = %s", [second.pk])
    with caplog.at_level(logging.ERROR, logger="authsec.audit"):
        result = verify_schema_chain.apply(args=["tenant_acme"]).get()
    assert result["ok"] is False and f"first broken event {second.seq}" in result["problems"][0]
    recorded = AuditEvent.objects.filter(action="audit.chain_verified").latest("seq")
    assert recorded.outcome == "failure" and f"first broken event {second.seq}" in recorded.data["problems"][0]
    assert any("does not verify" in message for message in caplog.messages)
