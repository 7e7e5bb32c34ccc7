"""The seed's own server.py (the AuthSec blog's "Create Your Secure MCP Server"), run unmodified in spirit by
tests/sdk with the SDK venv's python (`scripts/sdk_venv.py`) and pointed at our server by environment only:
AUTHSEC_AUTH_SERVICE_URL, AUTHSEC_SERVICES_URL, AUTHSEC_CLIENT_ID (the placeholder client id below is ignored
by the SDK in favour of AUTHSEC_CLIENT_ID).

Differences from the blog, all test plumbing: the listening port comes from SEED_SERVER_PORT (free port);
`run_mcp_server_with_oauth` gets this module (4.7.3 requires `user_module`); `admin_panel` names the caller;
`github_with_audit` is the blog's ServiceAccessSDK example without the GitHub and SPIRE calls (it reports a
digest of the token it read from Vault, never the token).
"""

import hashlib
import os
import sys

from authsec_sdk import ServiceAccessSDK, protected_by_AuthSec, run_mcp_server_with_oauth


# Tool 1: Accessible to all authenticated users
@protected_by_AuthSec("hello")
async def hello(arguments: dict) -> list:
    return [{"type": "text", "text": f"Hello, {arguments['_user_info']['email']}!"}]


# Tool 2: Admin only
@protected_by_AuthSec("admin_panel", roles=["admin"])
async def admin_panel(arguments: dict) -> list:
    return [{"type": "text", "text": f"Admin panel accessed by {arguments['_user_info']['email']}"}]


# Tool 3: Requires write permission
@protected_by_AuthSec("create_resource", scopes=["write"])
async def create_resource(arguments: dict) -> list:
    name = arguments.get("name", "Unnamed")
    return [{"type": "text", "text": f"Resource '{name}' created successfully!"}]


# Tool 4: External service credentials from Vault
@protected_by_AuthSec("github_with_audit", scopes=["read"])
async def github_with_audit(arguments: dict, session) -> list:
    services_sdk = ServiceAccessSDK(session)
    github_token = await services_sdk.get_service_token("GitHub API Integration")
    digest = hashlib.sha256(github_token.encode()).hexdigest()
    return [{"type": "text", "text": f"token sha256 {digest} for {arguments['_user_info']['email']}"}]


if __name__ == "__main__":
    run_mcp_server_with_oauth(
        sys.modules[__name__],
        client_id="your-client-id-here",
        app_name="My Secure MCP Server",
        host="127.0.0.1",
        port=int(os.environ.get("SEED_SERVER_PORT", "3005")),
    )
