"""The trust bundle page /t/<tenant>/spiffe/bundle: PEM by default, SPIFFE bundle JWKS with ?format=jwks."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.test import Client
from jwcrypto import jwk

from authsec_site.lib import vault
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_the_bundle_is_the_tenants_ca_in_pem(acme: Tenant, globex: Tenant) -> None:
    response = Client().get("/t/acme/spiffe/bundle")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pem-file"
    assert response.content.decode().strip() == vault.pki_ca_pem(acme.schema_name, "acme.authsec.local").strip()
    other = Client().get("/t/globex/spiffe/bundle").content
    assert other != response.content, "each tenant is its own trust domain"


def test_the_jwks_format_is_a_spiffe_bundle(acme: Tenant) -> None:
    response = Client().get("/t/acme/spiffe/bundle?format=jwks")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    ca = x509.load_pem_x509_certificate(vault.pki_ca_pem(acme.schema_name, "acme.authsec.local").encode())
    [key] = body["keys"]
    assert key["use"] == "x509-svid" and key["kty"] == "EC" and "d" not in key
    assert base64.b64decode(key["x5c"][0]) == ca.public_bytes(serialization.Encoding.DER)
    assert jwk.JWK(**key).export_to_pem() == ca.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert body["spiffe_refresh_hint"] >= 60


def test_an_unknown_format_is_a_clear_400(acme: Tenant) -> None:
    response = Client().get("/t/acme/spiffe/bundle?format=der")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_format", "error_description": "format must be one of: pem, jwks."}


def test_only_get_is_allowed(acme: Tenant) -> None:
    assert Client().post("/t/acme/spiffe/bundle").status_code == 405


def test_an_unknown_tenant_has_no_bundle(db) -> None:  # type: ignore[no-untyped-def]
    assert Client().get("/t/nobody/spiffe/bundle").status_code == 404


def test_a_vault_outage_is_a_503_without_internal_details(acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    addr = settings.VAULT_ADDR
    settings.VAULT_ADDR = "http://127.0.0.1:9"
    vault.reset_client()
    vault.forget_tenant_clients()
    try:
        response = Client().get("/t/acme/spiffe/bundle")
    finally:
        settings.VAULT_ADDR = addr
        vault.reset_client()
        vault.forget_tenant_clients()
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.json()["error"] == "bundle_unavailable"
    assert "127.0.0.1" not in response.content.decode()


def test_the_live_server_serves_the_bundle(asgi_server) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    with urllib.request.urlopen(f"{asgi_server.url}/t/acme/spiffe/bundle?format=jwks", timeout=10) as response:
        assert response.status == 200
        body = response.read().decode()
    assert '"use": "x509-svid"' in body and '"x5c"' in body
