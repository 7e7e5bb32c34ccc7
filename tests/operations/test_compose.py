"""docker-compose.yml holds together (no Docker engine runs it here): the topology of docs/scaling.md, each web node
configured alike and trusting exactly HAProxy's address, one beat, and only files that exist."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from tests.support.live import ROOT


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_runs_the_scaling_topology() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "openbao", "migrate", "web1", "web2", "haproxy", "worker", "beat"}
    beats = [name for name, svc in services.items() if "beat" in (svc.get("command") or [])]
    assert beats == ["beat"]


def test_the_web_nodes_are_alike_and_behind_haproxy_only() -> None:
    config = compose()
    services = config["services"]
    web1, web2, haproxy = services["web1"], services["web2"], services["haproxy"]
    assert web1 == web2
    assert "ports" not in web1  # clients reach the nodes through HAProxy only
    assert haproxy["ports"] == ["127.0.0.1:8000:8080"] and haproxy["environment"]["AUTHSEC_LB_BIND"] == ":8080"
    assert (haproxy["environment"]["AUTHSEC_WEB1"], haproxy["environment"]["AUTHSEC_WEB2"]) == (
        "web1:8000",
        "web2:8000",
    )
    assert haproxy["volumes"] == ["./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert set(haproxy["depends_on"]) == {"web1", "web2"}
    # The nodes believe X-Forwarded-For from HAProxy's fixed address, and from nothing else.
    address = haproxy["networks"]["authsec"]["ipv4_address"]
    subnet = config["networks"]["authsec"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert web1["environment"]["TRUSTED_PROXIES"] == address
    assert web1["environment"]["AUTHSEC_PUBLIC_URL"] == "${AUTHSEC_PUBLIC_URL:-http://127.0.0.1:8000}"


def test_every_app_container_shares_the_configuration_and_waits_for_migrations() -> None:
    services = compose()["services"]
    environment = services["migrate"]["environment"]
    for name in ("web1", "web2", "worker", "beat"):
        assert services[name]["environment"] == environment
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["image"] == "authsec-server:local" and services[name]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
