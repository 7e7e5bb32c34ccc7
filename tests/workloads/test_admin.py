"""The dashboard's workload list: SVID serial, expiry and status, and the "issue/renew now" action."""

from __future__ import annotations

from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from tenants.models import Tenant
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.matrix import PermissionMatrix
from tests.workloads.conftest import make_workload
from workloads.models import Workload

pytestmark = pytest.mark.django_db
LIST = "/t/{}/admin/workloads/workload/"


def test_the_list_shows_spiffe_id_serial_expiry_and_status(acme: Tenant) -> None:
    issued = make_workload(acme, "api", "/billing/api")
    make_workload(acme, "pending", "/pending", issue=False)
    page = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get(LIST.format("acme")).content.decode()
    assert "spiffe://acme.authsec.local/billing/api" in page
    assert issued.svid_serial in page
    assert ">valid<" in page and ">no SVID yet<" in page
    assert "PRIVATE KEY" not in page


def test_issue_now_writes_the_files_and_audits_the_admin(acme: Tenant, svid_dir: Path) -> None:
    workload = make_workload(acme, "api", "/billing/api", issue=False)
    admin = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    response = admin.post(LIST.format("acme"), {"action": "issue_now", "_selected_action": [workload.pk]}, follow=True)
    assert response.status_code == 200
    with schema_context(acme.schema_name):
        workload.refresh_from_db()
        event = AuditEvent.objects.get(action="workloads.svid_issued", target_id=str(workload.pk))
    assert f"New SVID for api: serial {workload.svid_serial}" in response.content.decode()
    assert (svid_dir / "acme" / "api" / "svid.key").is_file()
    assert event.actor_label == "admin@acme.test"


def test_issue_now_on_a_disabled_workload_shows_an_error(acme: Tenant) -> None:
    workload = make_workload(acme, "api", "/billing/api", issue=False)
    with schema_context(acme.schema_name):
        Workload.objects.filter(pk=workload.pk).update(is_enabled=False)
    response = log_in(acme, "admin@acme.test", ADMIN_PASSWORD).post(
        LIST.format("acme"), {"action": "issue_now", "_selected_action": [workload.pk]}, follow=True
    )
    assert "No SVID issued for api: Workload api is disabled" in response.content.decode()


def test_adding_a_workload_validates_the_path_and_is_audited(acme: Tenant) -> None:
    admin = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    form = {"name": "api", "description": "", "ttl_seconds": 600, "is_enabled": "on"}
    bad = admin.post(LIST.format("acme") + "add/", {**form, "spiffe_path": "/a/../b"})
    assert bad.status_code == 200 and "no empty" in bad.content.decode()
    good = admin.post(LIST.format("acme") + "add/", {**form, "spiffe_path": "/billing/api"})
    assert good.status_code == 302
    with schema_context(acme.schema_name):
        workload = Workload.objects.get(name="api")
        created = AuditEvent.objects.get(action="workloads.workload_created", target_id=str(workload.pk))
    assert (created.actor_label, created.data["before"]) == ("admin@acme.test", None)
    assert (created.data["after"]["spiffe_path"], created.data["after"]["ttl_seconds"]) == ("/billing/api", 600)

    change = LIST.format("acme") + f"{workload.pk}/change/"
    assert admin.post(change, {**form, "spiffe_path": "/billing/api", "ttl_seconds": 900}).status_code == 302
    assert admin.post(change.replace("change/", "delete/"), {"post": "yes"}).status_code == 302
    with schema_context(acme.schema_name):
        assert not Workload.objects.filter(pk=workload.pk).exists()
        changed = AuditEvent.objects.get(action="workloads.workload_changed", target_id=str(workload.pk))
        deleted = AuditEvent.objects.get(action="workloads.workload_deleted", target_id=str(workload.pk))
        assert not AuditEvent.objects.filter(action__startswith="admin.").exists()
    assert changed.data["changes"] == {"ttl_seconds": {"before": 600, "after": 900}}
    assert (deleted.actor_label, deleted.data["before"]["name"], deleted.data["after"]) == (
        "admin@acme.test",
        "api",
        None,
    )


def test_permission_matrix(acme: Tenant, globex: Tenant) -> None:
    make_workload(acme, "api", "/billing/api", issue=False)
    url = LIST.format("acme")
    matrix = PermissionMatrix.of(acme, globex, staff_email="helpdesk@acme.test")
    matrix.check(url, ["workloads.view_workload"], other_status=(302,))  # a globex session is not an acme session
    assert log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get(url).status_code == 200
    assert "/billing/api" not in matrix.other_admin.get(LIST.format("globex")).content.decode()
