"""A tool module as a deployment would write one; named in AUTHSEC_TOOL_MODULES by test_tool_modules.py only."""

from __future__ import annotations

from mcp_endpoint.registry import protected_by_AuthSec


@protected_by_AuthSec("example_module_echo", roles=["admin"], description="Echoes its text.")
async def example_module_echo(text: str) -> str:
    return text
