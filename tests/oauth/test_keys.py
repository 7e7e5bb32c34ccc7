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


def _forget_private_keys() -> None:
    from oauth import keys

    keys._cache.clear()  # a new process: the next signature reads Vault


def test_a_key_whose_private_half_vault_lost_is_replaced_and_its_tokens_still_verify(in_acme: Tenant) -> None:
    """A new OpenBao beside an older database (a fresh `.local/openbao`, a reset Vault): signing goes on with
    a new key instead of a 500, the lost key's tokens keep verifying, and the loss is audited."""
    import jwt

    from audit.models import AuditEvent
    from oauth.tokens import mint

    lost = create_signing_key(actor="tests")
    before = mint({"sub": "before", "iss": "tests"})
    vault.kv_delete_all(lost.vault_path)
    _forget_private_keys()

    after = mint({"sub": "after", "iss": "tests"})

    new_kid = jwt.get_unverified_header(after)["kid"]
    assert jwt.get_unverified_header(before)["kid"] == lost.kid and new_kid != lost.kid
    assert current_key().kid == new_kid
    lost.refresh_from_db()
    assert lost.retired_at is not None and lost.expires_at > timezone.now()
    jwks = {k["kid"]: k for k in HttpClient().get("/t/acme/oauth/jwks").json()["keys"]}
    assert lost.kid in jwks and new_kid in jwks
    for token, kid in ((before, lost.kid), (after, new_kid)):
        public = jwt.PyJWK(jwks[kid]).key
        assert jwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False})["iss"] == "tests"
    event = AuditEvent.objects.filter(action="oauth.key_lost").latest("id")
    assert event.outcome == "failure" and event.data == {"lost": lost.kid, "replaced_by": new_kid}


def test_vault_unreachable_is_an_error_and_never_a_new_key(in_acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    from oauth.tokens import mint

    key = create_signing_key(actor="tests")
    _forget_private_keys()
    settings.VAULT_ADDR = "http://127.0.0.1:9"  # nothing listens there
    vault.reset_client()
    vault.forget_tenant_clients()
    try:
        with pytest.raises(vault.VaultError) as excinfo:
            mint({"sub": "x"})
    finally:
        settings.VAULT_ADDR = vault.settings.VAULT_ADDR
        vault.reset_client()
        vault.forget_tenant_clients()
    assert excinfo.value.reason == "unreachable"
    assert current_key().kid == key.kid and not SigningKey.objects.filter(created_at__gt=key.created_at).exists()
