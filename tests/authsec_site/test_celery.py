"""Celery: a real worker and beat on the Redis broker run the periodic health task."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, live_server_env

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


def test_beat_schedules_the_health_check_and_the_worker_runs_it(django_db_setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
