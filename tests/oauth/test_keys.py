"""Signing keys: private halves only in Vault, rotation by the Celery task, JWKS keeps the previous key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.utils import timezone

from authsec_site.lib import vault
from oauth.keys import create_signing_key, current_key, prune_expired
from oauth.models import SigningKey
from oauth.tasks import rotate_signing_keys
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_private_key_is_in_vault_and_not_in_postgres(in_acme: Tenant) -> None:
    key = current_key()
    assert "d" not in key.public_jwk and "p" not in key.public_jwk  # no private RSA parameters
    with connection.cursor() as cursor:
        cursor.execute("SELECT public_jwk::text, vault_path FROM oauth_signingkey")
        assert all("PRIVATE KEY" not in " ".join(row) for row in cursor.fetchall())
    data, _version = vault.kv_read(key.vault_path)
    assert data["private_key_pem"].lstrip("-").startswith("BEGIN PRIVATE KEY")
    assert key.vault_path.startswith("authsec/tenants/tenant_acme/oauth/signing-keys/")


def test_rotation_task_rotates_only_when_due_and_jwks_keeps_the_old_key(
    in_acme: Tenant, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    # Work on a key made here: the session's committed key must keep its Vault secret for other tests.
    old = create_signing_key(actor="tests")
    assert rotate_signing_keys("tenant_acme") == {"acme": "current key still fresh"}
    SigningKey.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    result = rotate_signing_keys("tenant_acme")["acme"]
    new = current_key()
    assert result == f"rotated to {new.kid}"
    assert new.kid != old.kid
    kids = [k["kid"] for k in HttpClient().get("/t/acme/oauth/jwks").json()["keys"]]
    assert kids[0] == new.kid and old.kid in kids
    # Once every token the old key signed has expired, it leaves JWKS and Vault.
    SigningKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert prune_expired() == 1
    remaining = [k["kid"] for k in HttpClient().get("/t/acme/oauth/jwks").json()["keys"]]
    assert new.kid in remaining and old.kid not in remaining
    with pytest.raises(vault.VaultError) as excinfo:
        vault.kv_read(old.vault_path)
    assert excinfo.value.reason == "not_found"


def test_each_tenant_has_its_own_keys(acme: Tenant, globex: Tenant) -> None:
    acme_kids = {k["kid"] for k in HttpClient().get("/t/acme/oauth/jwks").json()["keys"]}
    globex_kids = {k["kid"] for k in HttpClient().get("/t/globex/oauth/jwks").json()["keys"]}
    assert acme_kids and globex_kids and not acme_kids & globex_kids
