"""Celery: a real worker and beat on the Redis broker run the periodic health task."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from authsec_site.lib.health import WORKER_CHECK_KEY
from authsec_site.tasks import health_check
from tests.support.live import ROOT, live_server_env

pytestmark = pytest.mark.django_db


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "authsec_site", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def worker_on_healthz() -> dict[str, object]:
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    return response.json()["worker"]


def test_healthz_reports_when_the_health_check_last_ran_and_how() -> None:
    cache.delete(WORKER_CHECK_KEY)
    assert worker_on_healthz() == {"last_health_check": None, "age_seconds": None, "result": None}
    before = time.time()
    health_check()  # the task's body, as the worker runs it
    worker = worker_on_healthz()
    assert worker["result"] == "ok" and worker["age_seconds"] in (0, 1)
    at = datetime.fromisoformat(str(worker["last_health_check"]).replace("Z", "+00:00"))
    assert at.tzinfo is not None and before - 1 <= at.timestamp() <= time.time()


def test_beat_schedules_the_health_check_and_the_worker_runs_it(django_db_setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache.delete(WORKER_CHECK_KEY)
    env = live_server_env(HEALTH_CHECK_INTERVAL="5", CELERY_BEAT_SCHEDULE_FILENAME=str(tmp_path / "beat-schedule"))
    queue = f"tests-{tmp_path.name}"
    env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker = _spawn(["worker", "-l", "info", "--pool", "solo", "-Q", queue, "-n", f"{queue}@%h"], worker_log, env)
    beat = _spawn(["beat", "-l", "info"], beat_log, env)
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if "health check ok: database=ok redis=ok vault=ok" in worker_log.read_text():
                break
            assert worker.poll() is None, worker_log.read_text()
            assert beat.poll() is None, beat_log.read_text()
            time.sleep(0.5)
        else:
            pytest.fail(f"no health check ran.\nworker:\n{worker_log.read_text()}\nbeat:\n{beat_log.read_text()}")
        assert "Scheduler: Sending due task health-check" in beat_log.read_text()
        # The worker's run is what /healthz reports (the web process reads the worker's record in Redis).
        assert worker_on_healthz()["result"] == "ok"
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
