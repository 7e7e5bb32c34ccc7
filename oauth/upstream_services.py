"""Writes of upstream identity providers. The client secret goes to Vault first; the row then records the
Vault version it must read, all in one transaction with its audit event, so a failed write never leaves a row
pointing at a secret that does not exist (at worst an unreferenced Vault version)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection, transaction

from audit import writes
from audit.writes import service
from authsec_site.lib import vault
from oauth import upstream
from oauth.models import UpstreamProvider

logger = logging.getLogger(__name__)


@service
def save_upstream_provider(
    provider: UpstreamProvider,
    *,
    actor: Any,
    m2m: Mapping[str, Iterable[Any]] | None = None,
    client_secret: str = "",
) -> UpstreamProvider:
    """Create or change `provider`; a non-empty `client_secret` becomes a new Vault version (empty keeps the old).
    The event says whether the secret changed, never what it is."""
    created = provider.pk is None
    if created and not client_secret:
        raise ValueError("A new upstream provider needs its client secret.")
    if not provider.vault_path:
        provider.vault_path = vault.tenant_path(connection.schema_name, "oauth", "upstream", provider.slug)
    if client_secret:
        provider.secret_version = vault.kv_write(provider.vault_path, {"client_secret": client_secret})
    old = None if created else UpstreamProvider.objects.filter(pk=provider.pk).values_list("issuer", flat=True).first()
    writes.save(
        actor,
        provider,
        m2m=m2m,
        created="oauth.upstream_created",
        changed="oauth.upstream_changed",
        data={"slug": provider.slug, "secret_changed": bool(client_secret)},
    )
    issuers = {provider.issuer, old or provider.issuer}
    transaction.on_commit(lambda: [upstream.forget(issuer) for issuer in issuers])
    return provider


@service
def delete_upstream_provider(provider: UpstreamProvider, *, actor: Any) -> None:
    """Delete the row now and its Vault secret after commit (a rollback keeps both)."""
    path, issuer = provider.vault_path, provider.issuer
    writes.delete(actor, provider, event="oauth.upstream_deleted", data={"slug": provider.slug})

    def _after_commit() -> None:
        upstream.forget(issuer)
        if not path:
            return
        try:
            vault.kv_delete_all(path)
        except vault.VaultError as exc:
            logger.error("Could not delete the Vault secret of a deleted upstream provider: %s", exc)

    transaction.on_commit(_after_commit)
