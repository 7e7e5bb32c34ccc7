"""A real Prometheus (Debian's package) scrapes a live server with the bearer token, after real traffic: the real
`mcp` client, the browser login and token endpoint, a Celery worker rotating credentials. PromQL through
Prometheus' HTTP API then returns the counts that traffic made, summed over the web process, its audit process and
the worker's pool process (multiprocess mode), and the alert rules of deploy/ evaluate on what was scraped.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.utils import timezone
from mcp.shared.exceptions import MCPError

from services import services
from services.models import Service
from services.tasks import rotate_service
from tests.support.live import (
    ROOT,
    LiveServer,
    free_port,
    live_server_env,
    start_asgi_server,
    stop_process,
    wait_for_port,
)
from tests.support.mcp import VALID_ARGUMENTS, Committed, call, commit_in_acme, get_token, mcp_list, modern_rpc, url
from workloads.models import Workload

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = secrets.token_urlsafe(32)
pytestmark = pytest.mark.django_db
ACME_DEMO = 'tenant="acme",application="demo"'


@dataclass
class Stack:
    server: LiveServer
    prometheus: str  # base URL of Prometheus' HTTP API
    queue: str  # the Celery queue of this module's worker


def _prometheus_config(directory: Path, target_port: int) -> Path:
    """Two jobs on the same server: one with the token, one with a wrong one (which must be refused)."""
    (directory / "token").write_text(TOKEN)
    (directory / "wrong-token").write_text("not-the-metrics-token-at-all")
    config = directory / "prometheus.yml"
    jobs = "".join(
        f"""
  - job_name: {job}
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {directory / token_file}
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
"""
        for job, token_file in (("authsec", "token"), ("authsec-wrong-token", "wrong-token"))
    )
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {ROOT / 'deploy/prometheus/alerts.yml'}\n"
        f"scrape_configs:{jobs}"
    )
    return config


def _wait(what: str, check: Callable[[], bool], timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(committed: Committed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own live server (its own metrics directory, so the counts are this module's traffic alone),
    a Celery worker on the same directory, and Prometheus scraping the server every second."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is missing: `make test` installs Debian's prometheus (`make prometheus`)")
    base = tmp_path_factory.mktemp("prometheus")
    multiproc = base / "multiproc"
    multiproc.mkdir()
    port, prometheus_port = free_port(), free_port()
    queue = f"tests-metrics-{secrets.token_hex(4)}"
    env = live_server_env(
        AUTHSEC_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DEBUG="0",
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        SERVICES_ROTATION_MAX_RETRIES="0",
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    processes: list[subprocess.Popen] = []
    try:
        server = start_asgi_server(env, base / "uvicorn.log", port)
        processes.append(server.proc)
        worker_log = base / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "authsec_site", "worker", "-l", "info", "--pool", "prefork",
             "--concurrency", "1", "-Q", queue, "-n", f"{queue}@%h"],
            cwd=ROOT, env=env, stdout=worker_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes.append(worker)
        prometheus_log = base / "prometheus.log"
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={_prometheus_config(base, port)}", f"--storage.tsdb.path={base / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
            cwd=base, stdout=prometheus_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes.append(prometheus)
        wait_for_port(prometheus, prometheus_port, prometheus_log)
        yield Stack(server, f"http://127.0.0.1:{prometheus_port}", queue)
    finally:
        for proc in reversed(processes):
            stop_process(proc)


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    response = httpx2.get(f"{stack.prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (promql, body)
    return body["data"]["result"]


def value(stack: Stack, promql: str) -> float | None:
    """The single value `promql` gives now (None: no series)."""
    result = query(stack, promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def expect(stack: Stack, promql: str, expected: float) -> None:
    """Wait until Prometheus has scraped what makes `promql` equal `expected` (scrapes run every second)."""
    seen: list[float | None] = []

    def equal() -> bool:
        seen.append(value(stack, promql))
        return seen[-1] == expected

    deadline = time.monotonic() + 30
    while not equal():
        if time.monotonic() > deadline:
            pytest.fail(f"{promql} = {seen[-1]}, expected {expected}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def traffic(stack: Stack, committed: Committed, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Real traffic, once for the module: two sign-ins and code exchanges, tool calls with the `mcp` client,
    refused requests, two rotations run by the worker, two workloads with SVIDs."""
    endpoint = url(stack.server)
    bob = get_token(stack.server, committed, "bob@acme.test")
    carol = get_token(stack.server, committed, "carol@acme.test")
    for _ in range(3):
        assert isinstance(call(endpoint, bob, "deploy_production"), MCPError)  # bob may not deploy: hidden
    for _ in range(2):
        assert not call(endpoint, bob, "calculator", VALID_ARGUMENTS["calculator"]).is_error
    assert not call(endpoint, carol, "deploy_production").is_error
    listed = mcp_list(endpoint, bob)
    calculator = {"name": "calculator", "arguments": VALID_ARGUMENTS["calculator"]}
    assert modern_rpc(endpoint, "tools/call", calculator).status_code == 401  # no token: a protected tool
    bad = {"Authorization": "Bearer not-a-token"}
    assert modern_rpc(endpoint, "tools/call", calculator, headers=bad).status_code == 401

    now = timezone.now()
    near, fresh = f"metrics-near-{secrets.token_hex(3)}", f"metrics-fresh-{secrets.token_hex(3)}"

    def seed() -> tuple[int, int]:
        generated = services.create_service(
            actor="tests",
            name=f"metrics-generated-{secrets.token_hex(3)}",
            rotation_kind=Service.RotationKind.GENERATED,
            credentials={"access_token": "first"},
        )
        failing = services.create_service(
            actor="tests",
            name=f"metrics-oauth-{secrets.token_hex(3)}",
            rotation_kind=Service.RotationKind.OAUTH2_REFRESH,
            rotation_config={"token_url": "https://example.invalid/token"},
        )
        for name, left in ((near, 10), (fresh, 55)):  # SVIDs of an hour: 10 and 55 minutes left
            Workload.objects.create(
                name=name,
                spiffe_path=f"/{name}",
                svid_not_before=now - dt.timedelta(minutes=60 - left),
                svid_not_after=now + dt.timedelta(minutes=left),
            )
        return generated.pk, failing.pk

    with django_db_blocker.unblock():
        generated, failing = commit_in_acme(seed)
    rotated = rotate_service.apply_async(args=("tenant_acme", generated, True), queue=stack.queue).get(timeout=60)
    assert rotated["rotated"] is True
    refused = rotate_service.apply_async(args=("tenant_acme", failing, True), queue=stack.queue).get(timeout=60)
    assert "No refresh token" in refused["error"]
    with django_db_blocker.unblock():
        names = commit_in_acme(
            lambda: dict(Service.objects.filter(pk__in=[generated, failing]).values_list("pk", "name"))
        )
    yield {"listed": listed, "generated": names[generated], "failing": names[failing], "near": near, "fresh": fresh}

    def clean() -> None:
        for service in Service.objects.filter(pk__in=[generated, failing]):
            services.delete_service(actor="tests", service=service)
        Workload.objects.filter(name__in=[near, fresh]).delete()

    with django_db_blocker.unblock():
        commit_in_acme(clean)


def test_denials_of_deploy_production_for_bob_are_counted(stack: Stack, traffic: dict[str, Any]) -> None:
    # Only bob called deploy_production and was denied on this server: the counts are his.
    calls = f"authsec_mcp_tool_calls_total{{{ACME_DEMO},tool=%s,outcome=%s}}"
    expect(stack, calls % ('"deploy_production"', '"denied"'), 3)
    expect(stack, calls % ('"deploy_production"', '"allowed"'), 1)  # carol's
    expect(stack, calls % ('"calculator"', '"allowed"'), 2)
    expect(stack, f'sum(authsec_mcp_requests_total{{{ACME_DEMO},method="tools/call",outcome="denied"}})', 3)


def test_refused_requests_count_as_unauthenticated(stack: Stack, traffic: dict[str, Any]) -> None:
    requests = f'authsec_mcp_requests_total{{{ACME_DEMO},outcome="unauthenticated",method=%s}}'
    expect(stack, requests % '"tools/call"', 1)  # no token, a protected tool
    expect(stack, requests % '"unknown"', 1)  # a token that is not one: refused before the body is read
    expect(stack, f'sum(authsec_mcp_requests_total{{{ACME_DEMO},outcome="error"}})', 0)


def test_tool_call_durations_and_list_sizes(stack: Stack, traffic: dict[str, Any]) -> None:
    # The three allowed calls are timed (denials are not); each took well under 30 s.
    expect(stack, f"sum(authsec_mcp_tool_call_duration_seconds_count{{{ACME_DEMO}}})", 3)
    expect(stack, f'sum(authsec_mcp_tool_call_duration_seconds_bucket{{{ACME_DEMO},le="30.0"}})', 3)
    assert 0 < value(stack, f"sum(authsec_mcp_tool_call_duration_seconds_sum{{{ACME_DEMO}}})") < 30  # type: ignore[operator]
    lists = value(stack, f"authsec_mcp_tools_listed_count{{{ACME_DEMO}}}")
    assert lists is not None and lists >= 1
    expect(stack, f'authsec_mcp_requests_total{{{ACME_DEMO},method="tools/list",outcome="allowed"}}', lists)
    # Every list here was bob's: the mean size is what his list showed.
    mean = f"authsec_mcp_tools_listed_sum{{{ACME_DEMO}}} / authsec_mcp_tools_listed_count"
    expect(stack, mean, len(traffic["listed"]))


def test_sign_ins_and_token_requests(stack: Stack, traffic: dict[str, Any]) -> None:
    expect(stack, 'authsec_logins_total{tenant="acme",outcome="success"}', 2)
    expect(stack, 'authsec_oauth_token_requests_total{tenant="acme",grant="authorization_code",outcome="success"}', 2)


def test_the_worker_and_the_audit_process_count_too(stack: Stack, traffic: dict[str, Any]) -> None:
    """The rotation counters come from the Celery worker's pool process, audit events from the web process's
    audit process: both write to the directory the web process reads."""
    rotations = 'authsec_credential_rotations_total{tenant="acme",service="%s",outcome="%s"}'
    expect(stack, rotations % (traffic["generated"], "success"), 1)
    expect(stack, rotations % (traffic["failing"], "failure"), 1)
    written = value(stack, "sum(authsec_audit_events_written_total)")
    assert written is not None and written >= 7  # six tool calls and a list, at least
    expect(stack, "sum(authsec_audit_events_dropped_total)", 0)
    assert value(stack, 'authsec_audit_batch_write_seconds_count{job="authsec"}')


def test_state_read_at_scrape_time(stack: Stack, traffic: dict[str, Any]) -> None:
    for dependency in ("database", "redis", "vault"):
        expect(stack, f'authsec_dependency_up{{job="authsec",dependency="{dependency}"}}', 1)
    age = 'authsec_credential_rotation_last_success_age_seconds{service="%s"}'
    seconds = value(stack, age % traffic["generated"])
    assert seconds is not None and 0 <= seconds < 120
    assert value(stack, age % traffic["failing"]) is None  # never rotated
    left = value(stack, f'authsec_svid_expiry_seconds{{tenant="acme",workload="{traffic["near"]}"}}')
    assert left is not None and 8 * 60 < left <= 10 * 60
    expect(stack, f'authsec_svid_lifetime_seconds{{tenant="acme",workload="{traffic["near"]}"}}', 3600)


def test_alert_rules_evaluate_on_the_scraped_series(stack: Stack, traffic: dict[str, Any]) -> None:
    """The SVID with 10 minutes of its hour left is under a quarter: its alert is pending (it fires after 2m);
    the one with 55 minutes left raises nothing."""

    def alerts() -> dict[str, str]:
        body = httpx2.get(f"{stack.prometheus}/api/v1/alerts", timeout=10).json()
        return {
            alert["labels"].get("workload", ""): alert["state"]
            for alert in body["data"]["alerts"]
            if alert["labels"]["alertname"] == "AuthSecSVIDNearExpiry"
        }

    _wait("the SVID alert", lambda: traffic["near"] in alerts())
    assert alerts()[traffic["near"]] in ("pending", "firing")
    assert traffic["fresh"] not in alerts()
    rules = httpx2.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules


def test_a_scraper_without_the_token_is_refused(stack: Stack, traffic: dict[str, Any]) -> None:
    def targets() -> dict[str, dict[str, Any]]:
        body = httpx2.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()
        return {target["labels"]["job"]: target for target in body["data"]["activeTargets"]}

    _wait("both scrapes", lambda: all(t["health"] != "unknown" for t in targets().values()) and len(targets()) == 2)
    assert targets()["authsec"]["health"] == "up"
    wrong = targets()["authsec-wrong-token"]
    assert wrong["health"] == "down" and "401" in wrong["lastError"]


def test_every_dashboard_query_is_valid_promql(stack: Stack, traffic: dict[str, Any]) -> None:
    import json

    dashboard = json.loads((ROOT / "deploy/grafana/authsec-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, replacement in (("$tenant", ".*"), ("$application", ".*"), ("$__rate_interval", "1m")):
                expr = expr.replace(variable, replacement)
            query(stack, expr.replace("$__range", "5m"))  # asserts Prometheus answers "success"
    # With the traffic above, the denied-tools panel names deploy_production.
    top = query(stack, 'topk(10, sum by (tool) (increase(authsec_mcp_tool_calls_total{outcome="denied"}[5m])))')
    assert "deploy_production" in {result["metric"].get("tool") for result in top}
