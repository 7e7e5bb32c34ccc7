"""Per-tenant RS256 signing keys. Private keys are kept only in Vault; Postgres holds kid, public JWK and
lifecycle (`SigningKey`). Private keys are cached in process memory after the first Vault read."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context
from jwcrypto import jwk

import audit
from audit.writes import service
from authsec_site.lib import vault
from oauth import issuance
from oauth.models import SigningKey

logger = logging.getLogger(__name__)
_cache: dict[tuple[str, str], tuple[Any, jwk.JWK]] = {}
_lock = threading.Lock()


def _generate() -> tuple[str, dict[str, Any], str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = jwk.JWK.from_pem(pem.encode())
    kid = key.thumbprint()
    public = key.export_public(as_dict=True)
    public.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return kid, public, pem


def _token_lifetime() -> timedelta:
    longest = max(settings.OAUTH_ACCESS_TOKEN_SECONDS, settings.OAUTH_ID_TOKEN_SECONDS)
    return timedelta(seconds=longest + 300)


@service
def create_signing_key(*, actor: Any = "system:keys", lost: str | None = None) -> SigningKey:
    """Generate a key, store its private half in Vault, then make it current (retiring the previous one): the
    dashboard's "rotate now", the rotation task, a tenant's first key. `lost` names the current key whose
    private half Vault no longer holds (`signing_key`): audited as `oauth.key_lost` in the same transaction as
    the new key. Reads that make a key on first use call it ``.nested`` (they may run inside a transaction)."""
    kid, public, pem = _generate()
    path = vault.tenant_path(connection.schema_name, "oauth", "signing-keys", kid)
    vault.kv_write(path, {"private_key_pem": pem})  # first Vault, so a row never points at a missing secret
    now = timezone.now()
    previous = list(SigningKey.objects.select_for_update().filter(retired_at__isnull=True))
    for old in previous:
        old.retired_at = now
        old.expires_at = now + _token_lifetime()
        old.save(update_fields=["retired_at", "expires_at"])
    key = SigningKey.objects.create(kid=kid, public_jwk=public, vault_path=path, created_at=now)
    audit.record(
        actor,
        "oauth.key_rotated" if previous else "oauth.key_created",
        target=key,
        data={"kid": kid, "retired": [old.kid for old in previous]},
    )
    if lost is not None:
        audit.record(
            actor,
            "oauth.key_lost",
            target=key,
            outcome="failure",
            data={"lost": lost, "replaced_by": kid},
        )
    return key


def _load_current_key() -> SigningKey:
    key = SigningKey.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
    return key if key is not None else create_signing_key.nested()


def current_key() -> SigningKey:
    """The tenant's current key (made on first use), kept per process until a key changes (`oauth.issuance`)."""
    return issuance.cached("current_key", _load_current_key)


def _tenant_created(sender: Any, schema_name: str, **kwargs: Any) -> None:
    """`tenants.signals.tenant_created`: the new tenant's first signing key (else it is made on first use)."""
    with schema_context(schema_name):
        current_key()


def private_jwk(key: SigningKey) -> tuple[Any, jwk.JWK]:
    """(cryptography private key, jwcrypto JWK) of `key`, read from Vault once per process."""
    cache_key = (connection.schema_name, key.kid)
    with _lock:
        hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    data, _version = vault.kv_read(key.vault_path)
    pem = data["private_key_pem"].encode()
    pair = (serialization.load_pem_private_key(pem, password=None), jwk.JWK.from_pem(pem))
    with _lock:
        _cache[cache_key] = pair
    return pair


def signing_key() -> tuple[SigningKey, Any, jwk.JWK]:
    """The current key with its private half, ready to sign.

    When Vault answers that the current key's private half is not there (Vault was reset or its data lost,
    e.g. a new `.local/openbao` beside an older database), that key can never sign again: it is retired like
    any rotated key (its public half stays published, so the tokens it signed verify until they expire), a
    new key is made, and `oauth.key_lost` is audited. Vault unreachable, sealed or refusing is an error as
    always, never a reason to rotate."""
    key = current_key()
    try:
        private, public = private_jwk(key)
    except vault.VaultError as exc:
        if exc.reason != "not_found":
            raise
        logger.error(
            "tenant %s: Vault has no private half for signing key %s; it is retired and a new key is made",
            connection.schema_name,
            key.kid,
        )
        key = create_signing_key.nested(actor="system:keys", lost=key.kid)
        private, public = private_jwk(key)
    return key, private, public


def current_signing_jwk() -> jwk.JWK:
    return signing_key()[2]


def published_keys() -> list[dict[str, Any]]:
    """Public JWKs to serve: the current key and retired keys whose tokens may still be in use."""
    now = timezone.now()
    if not SigningKey.objects.filter(retired_at__isnull=True).exists():
        current_key()
    keys = SigningKey.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by("-created_at")
    return [key.public_jwk for key in keys]


def rotate_if_due(*, actor: Any = "system:key-rotation") -> SigningKey | None:
    """Rotate when the current key is older than OAUTH_KEY_ROTATION_DAYS; safe to run repeatedly."""
    key = SigningKey.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
    if key is not None and key.created_at > timezone.now() - timedelta(days=settings.OAUTH_KEY_ROTATION_DAYS):
        return None
    return create_signing_key.nested(actor=actor)


def prune_expired() -> int:
    """Delete retired keys past their expiry: the row now, the Vault secret after commit (so a rollback
    never leaves a row whose private key is gone)."""
    count = 0
    with transaction.atomic():
        for key in SigningKey.objects.select_for_update().filter(expires_at__lte=timezone.now()):
            path = key.vault_path
            key.delete()
            transaction.on_commit(lambda path=path: vault.kv_delete_all(path))
            count += 1
    return count
