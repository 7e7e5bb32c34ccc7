"""Demo data for `seed_demo`: the seed's "GitHub API Integration" service in acme (idempotent)."""

from __future__ import annotations

from typing import Any

from django.db import connection

from authsec_site.lib import vault
from services import services
from services.models import Service

GITHUB = "GitHub API Integration"
# Not a real token: replace it in the dashboard (Services → GitHub API Integration → Access token).
PLACEHOLDER_TOKEN = "ghp_placeholder_replace_me_in_the_dashboard"


def seed_services(slug: str, actor: Any = "cli:seed_demo") -> Service | None:
    """Create the demo service of tenant `slug` in the current schema; an existing one keeps its settings,
    and gets the placeholder again only if Vault has no secret for it (a dev server that lost its data)."""
    if slug != "acme":
        return None
    service = Service.objects.filter(name=GITHUB).first()
    if service is None:
        return services.create_service.nested(
            actor=actor,
            name=GITHUB,
            service_type=Service.ServiceType.BEARER_TOKEN,
            auth_type=Service.AuthType.BEARER,
            base_url="https://api.github.com",
            description="The seed's example: list_my_repos reads this token.",
            scopes=["read"],
            credentials={"access_token": PLACEHOLDER_TOKEN},
        )
    path = service.vault_path or services.secret_path(service)
    if vault.tenant_kv_current_version(connection.schema_name, path) == 0:
        services.replace_secret.nested(actor=actor, service=service, credentials={"access_token": PLACEHOLDER_TOKEN})
    return service
