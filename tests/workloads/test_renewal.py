"""Renewal: files replaced while a TLS server keeps serving; the Celery tasks renew what is due, idempotently."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from authsec_site.celery import app
from tenants.models import Tenant
from tests.workloads.conftest import make_workload, quickstart, talk
from workloads.models import Workload
from workloads.services import issue_svid
from workloads.tasks import renew_due_svids, renew_svid

pytestmark = pytest.mark.django_db
CLIENT = "spiffe://acme.authsec.local/billing/worker"


def test_renewal_replaces_the_files_while_a_tls_server_keeps_serving(acme: Tenant, mtls_server) -> None:  # type: ignore[no-untyped-def]
    api = make_workload(acme, "api", "/billing/api")
    worker = make_workload(acme, "worker", "/billing/worker")
    server = mtls_server(quickstart(acme, "api").create_ssl_context_for_server(), allowed=[CLIENT])
    client = quickstart(acme, "worker")
    stop, served, failures = threading.Event(), [], []

    def keep_talking() -> None:
        while not stop.is_set():
            try:
                answer, serial = talk(server.port, client.create_ssl_context_for_client())
                assert answer == f"hello {CLIENT}", answer
                served.append(serial)
            except Exception as exc:  # noqa: BLE001 - every failure is a test failure, collected below
                failures.append(repr(exc))

    thread = threading.Thread(target=keep_talking, daemon=True)
    thread.start()
    renewed = []
    try:
        for _ in range(3):
            time.sleep(0.4)
            with schema_context(acme.schema_name):
                api = issue_svid(api, actor="tests").workload
                worker = issue_svid(worker, actor="tests").workload
            renewed.append(int(api.svid_serial.replace(":", ""), 16))
        time.sleep(0.6)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert failures == []
    assert [seen for seen in server.seen if seen.error or seen.refused] == []
    assert len(served) > 10, "the client kept connecting during the renewals"
    # The server switched to each renewed SVID without a restart: clients saw every new serial.
    assert set(renewed) <= set(served)
    assert served[-1] == renewed[-1]


@pytest.fixture
def eager() -> Iterator[None]:
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


def _make_due(tenant: Tenant, workload: Workload) -> None:
    now = timezone.now()
    with schema_context(tenant.schema_name):
        Workload.objects.filter(pk=workload.pk).update(
            svid_not_before=now - dt.timedelta(minutes=31), svid_not_after=now + dt.timedelta(minutes=29)
        )


def test_the_beat_task_renews_what_is_due_and_nothing_else(acme: Tenant, eager: None) -> None:
    due = make_workload(acme, "due", "/due")
    fresh = make_workload(acme, "fresh", "/fresh")
    never = make_workload(acme, "never", "/never", issue=False)
    _make_due(acme, due)

    queued = renew_due_svids.apply(args=[acme.schema_name]).get()

    assert sorted(queued[acme.schema_name]) == sorted([due.pk, never.pk])
    with schema_context(acme.schema_name):
        assert Workload.objects.get(pk=due.pk).svid_serial != due.svid_serial
        assert Workload.objects.get(pk=fresh.pk).svid_serial == fresh.svid_serial
        assert Workload.objects.get(pk=never.pk).status() == Workload.Status.VALID
    assert renew_due_svids.apply(args=[acme.schema_name]).get() == {}, "a second run finds nothing due"


def test_the_renewal_task_is_idempotent(acme: Tenant, eager: None) -> None:
    workload = make_workload(acme, "api", "/billing/api")
    _make_due(acme, workload)
    assert renew_svid.apply(args=[acme.schema_name, workload.pk]).get().startswith("renewed, serial ")
    assert renew_svid.apply(args=[acme.schema_name, workload.pk]).get() == "fresh: nothing to do"
    assert renew_svid.apply(args=[acme.schema_name, 999999]).get() == "skipped: no such enabled workload"


def test_missing_files_are_written_again(acme: Tenant, svid_dir: Path, eager: None) -> None:
    workload = make_workload(acme, "api", "/billing/api")
    (svid_dir / "acme" / "api" / "svid.key").unlink()
    assert renew_due_svids.apply(args=[acme.schema_name]).get() == {acme.schema_name: [workload.pk]}
    assert (svid_dir / "acme" / "api" / "svid.key").is_file()


def test_beat_schedules_the_renewal() -> None:
    app.loader.import_default_modules()
    app.finalize()
    entry = app.conf.beat_schedule["svid-renewal"]
    assert entry["task"] == "workloads.tasks.renew_due_svids"
