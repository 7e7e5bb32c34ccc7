"""Writes of upstream identity providers. The client secret goes to Vault first; the row then records the
Vault version it must read, all in one transaction with its audit event, so a failed write never leaves a row
pointing at a secret that does not exist (at worst an unreferenced Vault version)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest

import audit
from authsec_site.lib import vault
from oauth import upstream
from oauth.models import UpstreamProvider

logger = logging.getLogger(__name__)


def _summary(provider: UpstreamProvider) -> dict[str, Any]:
    return {
        "slug": provider.slug,
        "name": provider.name,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "scopes": provider.scopes,
        "is_enabled": provider.is_enabled,
        "auto_create_users": provider.auto_create_users,
        "allowed_email_domains": list(provider.allowed_email_domains),
        "secret_version": provider.secret_version,
    }


@transaction.atomic
def save_upstream_provider(
    *, actor: Any, provider: UpstreamProvider, client_secret: str = "", request: HttpRequest | None = None
) -> UpstreamProvider:
    """Create or change `provider`; a non-empty `client_secret` becomes a new Vault version (empty keeps the old)."""
    created = provider._state.adding
    if created and not client_secret:
        raise ValueError("A new upstream provider needs its client secret.")
    if not provider.vault_path:
        provider.vault_path = vault.tenant_path(connection.schema_name, "oauth", "upstream", provider.slug)
    if client_secret:
        provider.secret_version = vault.kv_write(provider.vault_path, {"client_secret": client_secret})
    old = None if created else UpstreamProvider.objects.filter(pk=provider.pk).values_list("issuer", flat=True).first()
    provider.save()
    audit.record(
        actor,
        "oauth.upstream_created" if created else "oauth.upstream_changed",
        target=provider,
        request=request,
        data={**_summary(provider), "secret_changed": bool(client_secret)},
    )
    issuers = {provider.issuer, old or provider.issuer}
    transaction.on_commit(lambda: [upstream.forget(issuer) for issuer in issuers])
    return provider


@transaction.atomic
def delete_upstream_provider(*, actor: Any, provider: UpstreamProvider, request: HttpRequest | None = None) -> None:
    """Delete the row now and its Vault secret after commit (a rollback keeps both)."""
    path = provider.vault_path
    audit.record(actor, "oauth.upstream_deleted", target=provider, request=request, data=_summary(provider))
    provider.delete()

    def _delete_secret() -> None:
        try:
            vault.kv_delete_all(path)
        except vault.VaultError as exc:
            logger.error("Could not delete the Vault secret of a deleted upstream provider: %s", exc)

    if path:
        transaction.on_commit(_delete_secret)
