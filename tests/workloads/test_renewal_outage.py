"""OpenBao stopped during a renewal: a real Celery worker retries with backoff, the old SVID stays in place and
valid, and the renewal succeeds once OpenBao is back (a fresh dev server: the CA is provisioned again)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone
from django_tenants.utils import schema_context
from spiffe import X509Svid

from audit.models import AuditEvent
from tenants.models import Tenant
from tests.support.bao import DevBao
from tests.support.live import ROOT, live_server_env
from workloads.models import Workload
from workloads.quickstart import QuickStartSVID
from workloads.tasks import renew_svid

pytestmark = pytest.mark.django_db


def wait_for(check: Callable[[], object], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(message() if callable(message) else message)


@pytest.fixture(scope="module")
def outage_world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    """Committed data (the worker is another process): a workload in acme; a throwaway OpenBao; a worker."""
    base = tmp_path_factory.mktemp("outage")
    bao = DevBao(base / "bao.log", f"throwaway-{secrets.token_hex(8)}")
    bao.start()
    with django_db_blocker.unblock():
        acme = Tenant.objects.get(slug="acme")
        with schema_context(acme.schema_name):
            workload = Workload.objects.create(name="outage-api", spiffe_path="/outage/api", ttl_seconds=600)
    queue = f"tests-svid-{secrets.token_hex(4)}"
    env = live_server_env(
        VAULT_ADDR=bao.addr,
        VAULT_TOKEN=bao.token,
        SVID_DIR=str(base / "svids"),
        SVID_RETRY_BACKOFF="1",
        SVID_RETRY_BACKOFF_MAX="2",
        SVID_MAX_RETRIES="60",
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    worker_log = base / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "authsec_site", "worker", "-l", "info", "--pool", "solo",
         "-Q", queue, "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=worker_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield {
            "acme": acme, "workload": workload, "bao": bao, "queue": queue,
            "svids": base / "svids" / "acme" / "outage-api", "worker": worker, "worker_log": worker_log,
        }  # fmt: skip
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        bao.stop()
        with django_db_blocker.unblock(), schema_context(acme.schema_name):
            Workload.objects.filter(pk=workload.pk).delete()


def _row(world: dict, django_db_blocker) -> Workload:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock(), schema_context(world["acme"].schema_name):
        return Workload.objects.get(pk=world["workload"].pk)


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in ("svid.crt", "svid.key", "ca.crt")}


def test_openbao_stopped_during_renewal(outage_world: dict, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    world, bao = outage_world, outage_world["bao"]
    schema, pk, directory = world["acme"].schema_name, world["workload"].pk, world["svids"]

    def log() -> str:
        return f"worker:\n{world['worker_log'].read_text()}"

    # 1. A first SVID, issued by the worker from the throwaway OpenBao (PKI provisioned on first use).
    renew_svid.apply_async(args=[schema, pk, True], queue=world["queue"])
    wait_for(lambda: _row(world, django_db_blocker).svid_serial, 60, log)
    first = _row(world, django_db_blocker)
    before = _files(directory)

    # 2. OpenBao goes away; a renewal is asked for.
    bao.stop()
    renew_svid.apply_async(args=[schema, pk, True], queue=world["queue"])
    wait_for(
        lambda: world["worker_log"].read_text().count(f"renewal of workload {pk} in {schema} failed") >= 3, 60, log
    )

    # The worker retried (with backoff), the old files are untouched and still a valid, usable SVID.
    text = world["worker_log"].read_text()
    assert "retrying in 1s" in text and "retrying in 2s" in text
    assert _files(directory) == before
    svid = X509Svid.load(str(directory / "svid.crt"), str(directory / "svid.key"), serialization.Encoding.PEM)
    assert svid.leaf.not_valid_after_utc > timezone.now()
    assert QuickStartSVID.from_directory(directory).create_ssl_context_for_server() is not None
    failed = _row(world, django_db_blocker)
    assert failed.status() == Workload.Status.FAILED and "unreachable" in failed.last_error
    assert failed.svid_serial == first.svid_serial
    with django_db_blocker.unblock(), schema_context(schema):
        assert (
            AuditEvent.objects.filter(
                action="workloads.svid_issue_failed", target_id=str(pk), outcome="failure"
            ).count()
            >= 3
        )

    # 3. OpenBao is back (a new dev server: empty storage): the next retry provisions the CA again and renews.
    bao.start()
    wait_for(lambda: _row(world, django_db_blocker).svid_serial != first.svid_serial, 60, log)
    renewed = _row(world, django_db_blocker)
    assert renewed.status() == Workload.Status.VALID and renewed.last_error == ""
    svid = X509Svid.load(str(directory / "svid.crt"), str(directory / "svid.key"), serialization.Encoding.PEM)
    assert f"{svid.leaf.serial_number:x}" == renewed.svid_serial.replace(":", "").lstrip("0")
    assert _files(directory)["ca.crt"] != before["ca.crt"], "the new CA's bundle was written with the SVID"
    with django_db_blocker.unblock(), schema_context(schema):
        assert AuditEvent.objects.filter(
            action="workloads.svid_issued", target_id=str(pk), data__serial=renewed.svid_serial
        ).exists()
