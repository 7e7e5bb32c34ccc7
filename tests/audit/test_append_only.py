"""Audit events are append-only: no update or delete through the ORM, a queryset, raw SQL or the admin."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

import audit
from audit.models import AuditEvent, AuditLogIsAppendOnly
from tenants.models import Tenant
from tests.support.accounts import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(in_acme: Tenant) -> AuditEvent:
    return audit.record("tests", "test.append_only", data={"n": 1})


def test_saving_an_existing_event_is_refused(event: AuditEvent) -> None:
    event.action = "test.rewritten"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.append_only"


def test_deleting_an_event_is_refused(event: AuditEvent) -> None:
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "attempt",
    [
        lambda qs: qs.update(action="test.rewritten"),
        lambda qs: qs.delete(),
        lambda qs: qs.bulk_update(list(qs), ["action"]),
        lambda qs: qs.update_or_create(pk=qs.get().pk, defaults={"action": "test.rewritten"}),
        lambda qs: AuditEvent.objects.update(action="test.rewritten"),
        lambda qs: AuditEvent.objects.all().delete(),
    ],
    ids=["update", "delete", "bulk_update", "update_or_create", "manager_update", "manager_delete"],
)
def test_queryset_writes_are_refused(event: AuditEvent, attempt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuditLogIsAppendOnly):
        attempt(AuditEvent.objects.filter(pk=event.pk))
    assert AuditEvent.objects.get(pk=event.pk).action == "test.append_only"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'test.rewritten' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_raw_sql_update_and_delete_are_refused_by_the_database(event: AuditEvent, sql: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.append_only"


def test_purge_switch_allows_retention_deletes_only(event: AuditEvent) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL authsec.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert not AuditEvent.objects.filter(pk=event.pk).exists()


def _admin_client() -> Client:
    client = Client()
    client.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    return client


def test_admin_lists_and_shows_events_read_only(event: AuditEvent) -> None:
    client = _admin_client()
    listing = client.get("/t/acme/admin/audit/auditevent/")
    assert listing.status_code == 200
    assert "test.append_only" in listing.content.decode()
    detail = client.get(f"/t/acme/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_admin_cannot_change_add_or_delete_events(event: AuditEvent) -> None:
    client = _admin_client()
    url = f"/t/acme/admin/audit/auditevent/{event.pk}/"
    assert client.post(url + "change/", {"action": "test.rewritten"}).status_code == 403
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert client.get("/t/acme/admin/audit/auditevent/add/").status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "test.append_only"
