"""A real Celery worker and beat rotate what the policy says is due, once, and retry failures with backoff."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from authsec_site.lib import vault
from services import services
from services.models import Service
from tests.support.live import ROOT, live_server_env
from tests.support.mcp import commit_in_acme
from tests.support.services import make_service, unique_secret

pytestmark = pytest.mark.django_db
SENT = "Scheduler: Sending due task services-rotation"
CHECKED = re.compile(r"Task services\.tasks\.rotate_due_services\[[0-9a-f-]+\] succeeded in [0-9.]+s: (.*)$", re.M)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "authsec_site", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _get(pk: int) -> Service:
    with schema_context("tenant_acme"):
        return Service.objects.get(pk=pk)


def test_beat_and_worker_rotate_due_services_once_and_retry_failures(django_db_setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = unique_secret()
    due = commit_in_acme(
        lambda: make_service(
            {"api_key": first},
            service_type="api_key",
            rotation_kind="generated",
            rotation_policy="interval",
            rotation_interval_days=30,
        )
    )
    failing = commit_in_acme(
        lambda: make_service(
            {"access_token": unique_secret()},
            service_type="oauth2",
            rotation_kind="oauth2_refresh",
            rotation_policy="interval",
            rotation_config={"token_url": "http://127.0.0.1:9/token"},
        )
    )
    queue = f"tests-{tmp_path.name}"
    env = live_server_env(
        SERVICES_ROTATION_CHECK_INTERVAL="5",
        SERVICES_ROTATION_RETRY_BACKOFF="1",
        SERVICES_ROTATION_MAX_RETRIES="2",
        CELERY_BEAT_SCHEDULE_FILENAME=str(tmp_path / "beat-schedule"),
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker = _spawn(["worker", "-l", "info", "--pool", "solo", "-Q", queue, "-n", f"{queue}@%h"], worker_log, env)
    beat = _spawn(["beat", "-l", "info"], beat_log, env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _get(due.pk).vault_version >= 2 and "retry: Retry in" in worker_log.read_text():
                break
            assert worker.poll() is None, worker_log.read_text()
            assert beat.poll() is None, beat_log.read_text()
            time.sleep(0.5)
        else:
            pytest.fail(f"no rotation ran.\nworker:\n{worker_log.read_text()}\nbeat:\n{beat_log.read_text()}")
        # Two more beat periods (each one's check has run): the rotated service is inside its window, so no
        # second version is made. Waits for those events, not for a fixed time.
        sent, checked = beat_log.read_text().count(SENT), len(CHECKED.findall(worker_log.read_text()))
        deadline = time.monotonic() + 60
        while beat_log.read_text().count(SENT) < sent + 2 or len(CHECKED.findall(worker_log.read_text())) < checked + 2:
            assert time.monotonic() < deadline, f"beat stopped.\nworker:\n{worker_log.read_text()}"
            time.sleep(0.2)
        for queued in CHECKED.findall(worker_log.read_text())[checked:]:  # what each later check found due
            assert due.pk not in ast.literal_eval(queued).get("acme", []), queued
        rotated = _get(due.pk)
        assert rotated.vault_version == 2 and rotated.status == "active"
        new_value = vault.tenant_kv_read("tenant_acme", rotated.vault_path)[0]["api_key"]
        assert new_value != first
        assert SENT in beat_log.read_text()
        broken = _get(failing.pk)
        assert broken.status == "rotation_failed" and broken.vault_version == 1 and broken.rotation_failures >= 2
        assert "No refresh token is stored for this service" in broken.last_rotation_error
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pk in (due.pk, failing.pk):
            commit_in_acme(lambda pk=pk: services.delete_service(actor="tests", service=Service.objects.get(pk=pk)))
    logs = worker_log.read_text() + beat_log.read_text()
    assert first not in logs and new_value not in logs
