"""AUTHSEC_TOOL_MODULES: the modules named there register their tools at start-up; a bad name stops start-up."""

from __future__ import annotations

import subprocess
import sys

from tests.support.live import ROOT, live_server_env

LIST_TOOLS = (
    "import django; django.setup(); from mcp_endpoint.registry import registry; "
    "print(' '.join(sorted(registry.names())))"
)


def _start(modules: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that starts Django (every app's ready) with AUTHSEC_TOOL_MODULES=`modules`."""
    env = live_server_env(AUTHSEC_TOOL_MODULES=modules, DJANGO_SETTINGS_MODULE="authsec_site.settings")
    return subprocess.run(
        [sys.executable, "-c", LIST_TOOLS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_module_named_in_the_setting_registers_its_tools_at_start_up() -> None:
    result = _start("tests.mcp_endpoint.example_tool_module")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["example_module_echo"]  # only the listed module: no demo tools


def test_the_default_setting_serves_the_demo_tools() -> None:
    result = _start("")
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert "hello" in names and "calculator" in names and "example_module_echo" not in names


def test_a_bad_module_name_fails_start_up_with_a_clear_message() -> None:
    result = _start("mcp_endpoint.demo_tools,acme_tools.does_not_exist")
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: AUTHSEC_TOOL_MODULES names the tool module "
        "'acme_tools.does_not_exist', which cannot be imported: No module named 'acme_tools'"
    ) in result.stderr
