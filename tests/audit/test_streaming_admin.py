"""SIEM sinks in the tenant dashboard: who may see and change them, the write-only secret (in Vault, never in the
database, the page or the audit log), the checks on a destination, and the delivery state (status, last error,
lag) with "Retry now"."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django_tenants.utils import schema_context

import audit
from audit.models import AuditEvent, AuditSink
from audit.streaming import services
from audit.streaming.delivery import deliver
from authsec_site.lib import vault
from tenants.models import Tenant
from tests.support.live import free_port
from tests.support.matrix import PermissionMatrix
from tests.support.siem import SiemCA

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stream_settings")]

LIST = "/t/acme/admin/audit/auditsink/"
ADD = LIST + "add/"
SECRET = "dashboard-typed-signing-key-" + "s" * 24


def form(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "siem",
        "kind": "webhook",
        "is_enabled": "on",
        "host": "",
        "port": "",
        "transport": "tls",
        "url": "https://127.0.0.1:9443/hook",
        "otlp_encoding": "protobuf",
        "ca_certificate": "",
        "batch_size": "100",
        "secret": SECRET,
        "start": "new",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def test_the_sink_pages_follow_the_permission_matrix(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.create(name="acme-only-siem", kind="syslog", host="127.0.0.1", port=6514)
    matrix = PermissionMatrix.of(acme, globex)
    page = matrix.check(LIST, ["audit.view_auditsink"])
    assert "acme-only-siem" in page.content.decode()
    assert "acme-only-siem" not in matrix.other_admin.get("/t/globex/admin/audit/auditsink/").content.decode()
    assert matrix.staff.get(ADD).status_code == 403, "viewing is not adding"
    assert matrix.staff.post(f"{LIST}{sink.pk}/change/", form(kind="syslog")).status_code == 403


def test_the_auditor_role_sees_the_delivery_state_and_changes_nothing(auditor_client: Client, acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.create(name="soc", kind="syslog", host="127.0.0.1", port=6514)
    assert auditor_client.get(LIST).status_code == 200
    assert auditor_client.get(f"{LIST}{sink.pk}/change/").status_code == 200
    assert auditor_client.get(ADD).status_code == 403
    retry = auditor_client.post(LIST, {"action": "retry_now", "_selected_action": [sink.pk]})
    assert retry.status_code in (200, 403) and not _events("audit.sink_retried", acme)


def _events(action: str, tenant: Tenant) -> list[AuditEvent]:
    with schema_context(tenant.schema_name):
        return list(AuditEvent.objects.filter(action=action))


def test_an_admin_adds_a_webhook_whose_secret_goes_to_vault_only(admin_client: Client, acme: Tenant) -> None:
    response = admin_client.post(ADD, form())
    assert response.status_code == 302, response.content.decode()[:3000]
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.get(name="siem")
        data, _ = vault.tenant_kv_read(connection.schema_name, sink.secret_path, sink.secret_version)
        assert data == {"value": SECRET} and sink.secret_version == 1
        assert sink.cursor_seq > 0 and sink.status == "active"
        added = AuditEvent.objects.get(action="audit.sink_created")
        assert added.data["after"]["url"] == "https://127.0.0.1:9443/hook" and added.actor_label == "admin@acme.test"
        assert added.seq == sink.cursor_seq + 1, "a new sink's stream starts with its own creation"
        row = str(AuditSink.objects.filter(pk=sink.pk).values().get())
        assert SECRET not in row and not AuditEvent.objects.filter(data__icontains=SECRET).exists()
    page = admin_client.get(f"{LIST}{sink.pk}/change/").content.decode()
    assert SECRET not in page and "stored in Vault (version 1)" in page

    # A new secret is a new Vault version; the change is audited by its version, never its value.
    changed = admin_client.post(f"{LIST}{sink.pk}/change/", form(secret="a-second-signing-key-" + "t" * 20))
    assert changed.status_code == 302
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.get(action="audit.sink_changed")
        assert event.data["changes"]["secret_version"] == {"before": 1, "after": 2}


def test_an_admin_can_start_a_sink_with_every_event_still_in_the_database(admin_client: Client, acme: Tenant) -> None:
    assert admin_client.post(ADD, form(start="all")).status_code == 302
    with schema_context(acme.schema_name):
        assert AuditSink.objects.get(name="siem").cursor_seq == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "http://127.0.0.1:9443/hook"}, "url", "Use an https URL"),
        ({"url": ""}, "url", "needs the receiver"),
        ({"secret": ""}, "secret", "A webhook needs a signing secret."),
        ({"secret": "short"}, "secret", "Use at least 32 characters."),
        ({"kind": "syslog", "url": "", "host": "127.0.0.1", "secret": ""}, "port", "needs the receiver's port"),
        ({"kind": "syslog", "url": "", "host": "127.0.0.1", "port": "6514"}, "secret", "use no secret"),
        ({"ca_certificate": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"}, "ca_certificate",
         "not usable PEM"),
        ({"url": "https://10.1.2.3/hook"}, "url", "non-public address"),
        ({"kind": "syslog", "url": "", "host": "169.254.169.254", "port": "514", "secret": ""}, "host",
         "non-public address"),
    ],
)  # fmt: skip
def test_the_form_refuses_a_bad_sink_with_a_message(
    admin_client: Client, acme: Tenant, fields: dict[str, str], field: str, message: str
) -> None:
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    with schema_context(acme.schema_name):
        assert not AuditSink.objects.exists()


def test_the_operator_may_allow_a_private_siem_network(admin_client: Client, acme: Tenant) -> None:
    with override_settings(AUDIT_SINK_ALLOWED_NETWORKS=["10.1.0.0/16"]):
        response = admin_client.post(ADD, form(url="https://10.1.2.3/hook"))
    assert response.status_code == 302


def test_the_list_shows_status_last_error_and_lag_and_retry_now_is_audited(
    admin_client: Client, acme: Tenant, siem_ca: SiemCA
) -> None:
    port = free_port()  # nothing listens there
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.create(
            name="down-siem", kind="syslog", host="127.0.0.1", port=port, cursor_seq=services.starting_cursor("new")
        )
        for n in range(3):
            audit.record("tests", "tests.streamed", data={"n": n})
        for _ in range(3):
            deliver(sink.pk, force=True)
        sink.refresh_from_db()
        assert sink.status == "dead_letter"
    page = admin_client.get(LIST).content.decode()
    assert "Dead letter" in page and f"syslog 127.0.0.1:{port}: could not connect" in page
    assert "4 events, oldest" in page  # three events and the dead-letter event wait for this sink
    change_page = admin_client.get(f"{LIST}{sink.pk}/change/").content.decode()
    assert "Delivery state" in change_page and "could not connect" in change_page

    response = admin_client.post(LIST, {"action": "retry_now", "_selected_action": [sink.pk]})
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        retried = AuditEvent.objects.get(action="audit.sink_retried")
        assert retried.actor_label == "admin@acme.test" and retried.data["status"] == "dead_letter"
        sink.refresh_from_db()
        assert sink.next_attempt_at is None and sink.status == "dead_letter"


def test_a_dashboard_save_never_moves_the_cursor(admin_client: Client, acme: Tenant) -> None:
    created = admin_client.post(ADD, form(kind="syslog", url="", host="127.0.0.1", port="6514", secret=""))
    assert created.status_code == 302
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.get(name="siem")
    page = admin_client.get(f"{LIST}{sink.pk}/change/")  # the form is read, then the stream moves on
    assert page.status_code == 200
    with schema_context(acme.schema_name):
        AuditSink.objects.filter(pk=sink.pk).update(cursor_seq=sink.cursor_seq + 5, delivered_count=5)
    response = admin_client.post(
        f"{LIST}{sink.pk}/change/", form(kind="syslog", url="", host="127.0.0.1", port="6515", secret="", start=None)
    )
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        sink_after = AuditSink.objects.get(pk=sink.pk)
    assert sink_after.port == 6515 and sink_after.cursor_seq == sink.cursor_seq + 5 and sink_after.delivered_count == 5


def test_deleting_a_sink_deletes_its_secret_after_commit(
    admin_client: Client, acme: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    assert admin_client.post(ADD, form()).status_code == 302
    with schema_context(acme.schema_name):
        sink = AuditSink.objects.get(name="siem")
    path = sink.secret_path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{LIST}{sink.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        assert not AuditSink.objects.filter(pk=sink.pk).exists()
        assert AuditEvent.objects.filter(action="audit.sink_deleted").exists()
    with pytest.raises(vault.VaultError) as lost:
        vault.tenant_kv_read(acme.schema_name, path)
    assert lost.value.reason == "not_found"
