"""Build the state of the backup test's source stack in a database and OpenBao of its own (run as a subprocess:
`python -m tests.operations.source_state GITHUB_URL TOKEN`, with DATABASE_URL and VAULT_* of that stack).

Migrates the public schema, creates tenant acme through the real `create_tenant` service (its signing key in
Vault, its SPIFFE CA in a PKI mount, its AppRole), the demo users and RBAC data, a registered public OAuth client,
and the seed's "GitHub API Integration" service whose token lives in Vault (two versions: Postgres must point at
the second). Prints the client id as JSON."""

from __future__ import annotations

import json
import sys

import django


def main(github_url: str, token: str) -> dict[str, str]:
    django.setup()
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from rbac.demo import DEMO, seed_rbac
    from services import services
    from services.demo import GITHUB
    from services.models import Service
    from tenants.services import create_tenant, ensure_public_tenant
    from tests.factories import OAuthClientFactory, UserFactory
    from tests.support.accounts import ADMIN_PASSWORD
    from tests.support.mcp import REDIRECT
    from tests.support.oauth import PASSWORD

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    ensure_public_tenant()
    create_tenant(
        actor="tests", slug="acme", name="Acme Corp", admin_email="admin@acme.test", admin_password=ADMIN_PASSWORD
    )
    with schema_context("tenant_acme"):
        for email in DEMO["acme"]["users"]:
            user = UserFactory(email=email)
            user.set_password(PASSWORD)
            user.save()
        seed_rbac("acme")
        client = OAuthClientFactory(name="MCP client", redirect_uris=REDIRECT)
        service = services.create_service(
            actor="tests",
            name=GITHUB,
            service_type=Service.ServiceType.BEARER_TOKEN,
            auth_type=Service.AuthType.BEARER,
            base_url=github_url,
            scopes=["read"],
            credentials={"access_token": "ghp_first_version_replaced_below"},
        )
        services.replace_secret(actor="tests", service=service, credentials={"access_token": token})
    return {"client_id": client.client_id}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
