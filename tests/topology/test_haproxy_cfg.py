"""deploy/haproxy.cfg as shipped is a valid configuration for Debian's HAProxy, and the test topology changes
nothing in it but its list of nodes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.topology import HAPROXY, HAPROXY_CFG, HAPROXY_ERRORS, TopologyError, render_haproxy_cfg


def check(cfg: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUTHSEC_LB_ADMIN_SOCKET": str(tmp_path / "admin.sock"),
        "AUTHSEC_LB_MAXCONN": "1000",
        "AUTHSEC_LB_ERRORS": str(HAPROXY_ERRORS),
    }
    return subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, env=env, timeout=30)


def test_the_shipped_config_is_valid(tmp_path: Path) -> None:
    result = check(HAPROXY_CFG, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_topology_rewrites_only_the_node_lines_and_the_result_is_valid(tmp_path: Path) -> None:
    rendered = render_haproxy_cfg([("web1", 41001), ("web2", 41002), ("web3", 41003)])
    shipped = HAPROXY_CFG.read_text().splitlines()
    lines = rendered.splitlines()
    servers = [line.strip() for line in lines if line.strip().startswith("server ")]
    assert servers == [f"server web{n} 127.0.0.1:4100{n} check" for n in (1, 2, 3)]
    assert [line for line in lines if not line.strip().startswith("server ")] == [
        line for line in shipped if not line.strip().startswith("server ")
    ]
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(rendered)
    result = check(cfg, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_config_without_the_node_markers_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(HAPROXY_CFG.read_text().replace("# BEGIN web nodes", "# web nodes"))
    with pytest.raises(TopologyError, match="BEGIN web nodes"):
        render_haproxy_cfg([("web1", 41001)], broken)
