"""deploy/: the alert rules load in Debian's promtool and fire on the series they are meant for; the example scrape
config parses; the Grafana dashboard asks only for metrics the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from authsec_site.lib import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args: str) -> str:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus (`make prometheus`)")
    result = subprocess.run([PROMTOOL, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_alert_rules_load() -> None:
    assert "SUCCESS: 10 rules found" in _promtool("check", "rules", "alerts.yml")


def test_alerts_fire_on_their_series_only() -> None:
    """alerts.test.yml: rotation failing, SVID near expiry, denial spike, audit backlog and drops, Vault outage."""
    _promtool("test", "rules", "alerts.test.yml")


def test_every_alert_the_issue_asks_for_is_there() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\S+)$", (DEPLOY / "prometheus/alerts.yml").read_text(), re.M))
    required = {
        "AuthSecCredentialRotationFailing",
        "AuthSecSVIDNearExpiry",
        "AuthSecDenialSpike",
        "AuthSecAuditWriterBacklog",
        "AuthSecVaultDown",
    }
    assert required <= alerts
    tested = set(re.findall(r"alertname: (\S+)", (DEPLOY / "prometheus/alerts.test.yml").read_text()))
    assert alerts - tested == {"AuthSecScrapeFailing"}  # `up` is Prometheus' own series


def test_example_scrape_config_parses() -> None:
    _promtool("check", "config", "--syntax-only", "prometheus.example.yml")


def _families() -> dict[str, set[str]]:
    """Every metric family the server exports, with the series names it shows: the metrics of
    `authsec_site.lib.metrics` and the families read at scrape time."""
    families: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the registry's own index
        for family in collector.collect():
            if family.name.startswith("authsec_"):
                suffixes = ("_total",) if family.type == "counter" else ("_bucket", "_sum", "_count", "")
                families[family.name] = {family.name + suffix for suffix in suffixes}
    state = metrics.State({"vault": True}, [("t", "s", 1.0)], [("t", "w", 1.0, 2.0)])
    for family in metrics._state_families(state):  # noqa: SLF001
        families[family.name] = {family.name}
    return families


def test_dashboard_and_rules_ask_only_for_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/authsec-dashboard.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    rules = (DEPLOY / "prometheus/alerts.yml").read_text()
    families = _families()
    exported = set().union(*families.values())
    assert set(re.findall(r"\bauthsec_[a-z_]+", exprs + rules)) - exported == set()
    # Every family the server exports has a panel.
    on_dashboard = set(re.findall(r"\bauthsec_[a-z_]+", exprs))
    assert {name for name, series in families.items() if not series & on_dashboard} == set()
