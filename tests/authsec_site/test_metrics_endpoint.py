"""``/metrics``: off unless a token or an allow-list is configured; then only for the scraper that matches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from authsec_site.lib import metrics

TOKEN = "metrics-token-for-tests-0123456789"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _get(client: Client, token: str | None = None, ip: str = "127.0.0.1") -> object:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", REMOTE_ADDR=ip, **headers)


def test_metrics_are_off_without_token_or_allow_list(settings, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    response = _get(client)
    assert response.status_code == 404
    assert "set METRICS_TOKEN or METRICS_ALLOWED_IPS" in response.json()["error_description"]
    assert b"authsec_" not in response.content


def test_refuses_a_missing_or_wrong_token(settings, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    for token in (None, "wrong-token-of-some-length", TOKEN + "x"):
        response = _get(client, token)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"authsec_" not in response.content


def test_serves_the_exposition_with_the_token(settings, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    response = _get(client, TOKEN)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.content.decode()
    # The dependencies are checked at scrape time: the test services all answer.
    for dependency in ("database", "redis", "vault"):
        assert f'authsec_dependency_up{{dependency="{dependency}"}} 1.0' in body


def test_allow_list_admits_listed_addresses_only(settings, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.1.0.0/16", "192.0.2.7"]
    assert _get(client, ip="10.1.44.5").status_code == 200
    assert _get(client, ip="192.0.2.7").status_code == 200
    refused = _get(client, ip="10.2.0.1")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"


def test_token_and_allow_list_must_both_match(settings, client: Client) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, ["10.1.0.0/16"]
    assert _get(client, TOKEN, ip="10.1.0.9").status_code == 200
    assert _get(client, TOKEN, ip="10.9.0.9").status_code == 403
    assert _get(client, None, ip="10.1.0.9").status_code == 401


def test_post_is_refused(settings, client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def _sample(name: str, labels: dict[str, str]) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tool_calls_reach_prometheus_client_when_flushed() -> None:
    """tools/call counts wait in the tally until `flush` moves them: counters, the requests counter and the
    histogram's buckets and sum."""
    labels = {"tenant": "metrics-test", "application": "app", "tool": "calc"}
    calls = {**labels, "outcome": "allowed"}
    requests = {"tenant": "metrics-test", "application": "app", "method": "tools/call"}
    before = {
        outcome: _sample("authsec_mcp_tool_calls_total", {**labels, "outcome": outcome}) for outcome in metrics.OUTCOMES
    }
    started = time.perf_counter()
    metrics.tool_call("metrics-test", "app", "calc", "allow", False, started)
    metrics.tool_call("metrics-test", "app", "calc", "allow", False, started)
    metrics.tool_call("metrics-test", "app", "calc", "allow", True, started)
    metrics.tool_call("metrics-test", "app", "calc", "deny", False, started)
    assert _sample("authsec_mcp_tool_calls_total", calls) == before["allowed"]  # not flushed yet
    metrics.flush()
    assert _sample("authsec_mcp_tool_calls_total", calls) == before["allowed"] + 2
    assert _sample("authsec_mcp_tool_calls_total", {**labels, "outcome": "error"}) == before["error"] + 1
    assert _sample("authsec_mcp_tool_calls_total", {**labels, "outcome": "denied"}) == before["denied"] + 1
    assert _sample("authsec_mcp_requests_total", {**requests, "outcome": "denied"}) >= 1
    # Three calls ran (the denial is not timed), each well under 30 s.
    assert _sample("authsec_mcp_tool_call_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 3
    assert _sample("authsec_mcp_tool_call_duration_seconds_bucket", {**labels, "le": "30.0"}) == 3
    assert 0 < _sample("authsec_mcp_tool_call_duration_seconds_sum", labels) < 30
    metrics.flush()  # nothing new: nothing moves twice
    assert _sample("authsec_mcp_tool_calls_total", calls) == before["allowed"] + 2


def test_unknown_tool_names_share_one_empty_label() -> None:
    started = time.perf_counter()
    metrics.tool_call("metrics-test", "app", None, "deny", False, started)
    metrics.flush()
    labels = {"tenant": "metrics-test", "application": "app", "tool": "", "outcome": "denied"}
    assert _sample("authsec_mcp_tool_calls_total", labels) >= 1


def test_token_requests_keep_grant_and_outcome_bounded() -> None:
    """Whatever a client sends as grant type or gets as error, the labels stay in a fixed vocabulary."""
    tenant = metrics.current_tenant()
    metrics.token_request("authorization_code", 200, b"{}")
    metrics.token_request("x" * 500, 400, b'{"error": "unsupported_grant_type"}')
    metrics.token_request("refresh_token", 400, b'{"error": "made_up_by_someone"}')
    metrics.token_request(None, 500, b"<html>")
    sample = "authsec_oauth_token_requests_total"
    assert _sample(sample, {"tenant": tenant, "grant": "authorization_code", "outcome": "success"}) >= 1
    assert _sample(sample, {"tenant": tenant, "grant": "other", "outcome": "unsupported_grant_type"}) >= 1
    assert _sample(sample, {"tenant": tenant, "grant": "refresh_token", "outcome": "error"}) >= 1
    assert _sample(sample, {"tenant": tenant, "grant": "other", "outcome": "error"}) >= 1


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    probe = "import django; django.setup(); from django.conf import settings; print(settings.METRICS_ALLOWED_IPS)"
    environment = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "authsec_site.settings", **env}
    return subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_start_refuses_an_allow_list_entry_that_is_not_an_address() -> None:
    result = _start({"METRICS_ALLOWED_IPS": "10.0.0.0/8, prometheus.internal"})
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS: 'prometheus.internal' is not an IP address or CIDR network" in result.stderr


def test_start_refuses_a_short_token() -> None:
    result = _start({"METRICS_TOKEN": "short"})
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 16 characters" in result.stderr
