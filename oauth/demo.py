"""Demo OAuth data for `seed_demo` (idempotent): a public client for MCP clients on this machine."""

from __future__ import annotations

from oauth.models import Client

DEMO_CLIENT_ID = "demo-mcp-client"
# Loopback redirects (RFC 8252: any port on 127.0.0.1), plus MCP Inspector's default callback.
DEMO_REDIRECTS = "http://127.0.0.1/callback http://localhost:6274/oauth/callback"


def seed_oauth() -> Client:
    client, _ = Client.objects.get_or_create(
        client_id=DEMO_CLIENT_ID,
        defaults={
            "name": "Demo MCP client",
            "client_type": Client.CLIENT_PUBLIC,
            "authorization_grant_type": Client.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": DEMO_REDIRECTS,
            "algorithm": Client.RS256_ALGORITHM,
            "client_secret": "",
        },
    )
    return client
