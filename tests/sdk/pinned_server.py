"""An MCP server on the published AuthSec SDK's decorator API, run by tests/sdk/test_pinning_live.py with the SDK
venv's python. Its `forecast` tool takes the input schema in FORECAST_SCHEMA (JSON), so restarting it with another
value is the SDK server re-registering the tool with a changed schema. Configured like any SDK server, by the
SDK's environment variables (AUTHSEC_AUTH_SERVICE_URL, AUTHSEC_SERVICES_URL, AUTHSEC_CLIENT_ID); PINNED_SERVER_PORT
is where it listens. It must not import the project: it runs in another virtualenv.
"""

import json
import os
import sys

from authsec_sdk import protected_by_AuthSec, run_mcp_server_with_oauth

SCHEMA = json.loads(os.environ.get("FORECAST_SCHEMA", '{"type": "object", "properties": {}}'))


@protected_by_AuthSec("forecast", description="The weather forecast for a city.", inputSchema=SCHEMA)
async def forecast(arguments: dict) -> list:
    return [
        {"type": "text", "text": f"Sunny in {arguments.get('city', 'town')} for {arguments['_user_info']['email']}"}
    ]


if __name__ == "__main__":
    run_mcp_server_with_oauth(
        sys.modules[__name__],
        client_id="your-client-id-here",
        app_name="Pinned SDK server",
        host="127.0.0.1",
        port=int(os.environ["PINNED_SERVER_PORT"]),
    )
