"""An MCP server protected by the published SDK's runtime API, run by the SDK venv's python (mcp 1.x).

Configured only through the SDK's own `from_env()` (AUTHSEC_* variables), exactly as a user would point it at
this server; `SDK_TEST_PORT` is where it listens and `SDK_TEST_POLICY_TTL` (seconds) shortens the SDK's policy
cache (`Config.scope_matrix_ttl`, 30 s by default) so a test sees a dashboard change quickly.
This file must not import anything from the project: it runs in another virtualenv.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta

import uvicorn
from authsec_sdk.runtime import from_env, mount_mcp, principal_from_context
from fastapi import FastAPI
from mcp.server.fastmcp import FastMCP

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

mcp = FastMCP("notes")


@mcp.tool(description="Read the team's notes.")
def read_notes() -> str:
    principal = principal_from_context()
    return f"notes for {principal.subject if principal else '?'}: buy milk"


@mcp.tool(description="Write a note.")
def write_note(text: str) -> str:
    return f"saved: {text}"


@mcp.tool(description="Say hello.")
def hello() -> str:
    return "hello"


def main() -> None:
    cfg = from_env()
    cfg.scope_matrix_ttl = timedelta(seconds=float(os.environ.get("SDK_TEST_POLICY_TTL", "30")))
    app = FastAPI()
    mount_mcp(app, "/mcp", mcp, cfg)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["SDK_TEST_PORT"]), log_level="info")


if __name__ == "__main__":
    main()
