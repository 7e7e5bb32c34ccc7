"""Each tenant is a trust domain with its own CA in Vault PKI, provisioned at creation and again on first use."""

from __future__ import annotations

import pytest
from cryptography import x509
from django_tenants.utils import schema_context

from authsec_site.lib import vault
from tenants.models import Tenant
from tests.workloads.conftest import make_workload
from workloads.services import ensure_trust_domain

pytestmark = pytest.mark.django_db


def _role(schema: str) -> dict:
    return vault.client().secrets.pki.read_role(vault.SVID_ROLE, mount_point=vault.pki_mount(schema))["data"]


def test_creating_a_tenant_provisions_its_ca_and_svid_role(acme: Tenant, globex: Tenant) -> None:
    # The session's tenants were made by the real create_tenant (tests/conftest.py).
    mounts = vault.client().sys.list_mounted_secrets_engines()["data"]
    for tenant in (acme, globex):
        assert f"{vault.pki_mount(tenant.schema_name)}/" in mounts
        role = _role(tenant.schema_name)
        assert role["allowed_uri_sans"] == [f"spiffe://{tenant.slug}.authsec.local/*"]
        assert role["basic_constraints_valid_for_non_ca"] is True and role["require_cn"] is False
        assert role["key_usage"] == ["DigitalSignature"]
    acme_ca = x509.load_pem_x509_certificate(vault.pki_ca_pem(acme.schema_name, "acme.authsec.local").encode())
    globex_ca = x509.load_pem_x509_certificate(vault.pki_ca_pem(globex.schema_name, "globex.authsec.local").encode())
    assert acme_ca.subject.rfc4514_string() == "CN=acme.authsec.local SPIFFE CA"
    assert acme_ca.public_key() != globex_ca.public_key()


def test_provisioning_twice_changes_nothing(acme: Tenant) -> None:
    before = vault.pki_ca_pem(acme.schema_name, "acme.authsec.local")
    assert ensure_trust_domain(acme.schema_name) is True
    assert vault.pki_ensure(acme.schema_name, "acme.authsec.local") is False
    assert vault.pki_ca_pem(acme.schema_name, "acme.authsec.local") == before


def test_the_pki_is_created_on_first_use_when_it_is_missing(acme: Tenant) -> None:
    # What a restarted dev server (in-memory storage) or a Vault outage at tenant creation leaves behind.
    vault.client().sys.disable_secrets_engine(vault.pki_mount(acme.schema_name))
    workload = make_workload(acme, "api", "/billing/api")
    assert workload.svid_serial
    assert _role(acme.schema_name)["allowed_uri_sans"] == ["spiffe://acme.authsec.local/*"]


def test_a_tenant_cannot_issue_an_id_of_another_trust_domain(acme: Tenant) -> None:
    with pytest.raises(vault.VaultError, match="not in trust domain"):
        vault.pki_issue_svid(acme.schema_name, "acme.authsec.local", "spiffe://globex.authsec.local/x", 300)
    # Nor by naming another trust domain for acme's mount: its role only allows acme's URI SANs, for life.
    with pytest.raises(vault.VaultError, match="not valid for this role"):
        vault.pki_issue_svid(acme.schema_name, "globex.authsec.local", "spiffe://globex.authsec.local/x", 300)


def test_provisioning_never_raises_when_vault_is_down(acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    addr = settings.VAULT_ADDR
    settings.VAULT_ADDR = "http://127.0.0.1:9"
    vault.reset_client()
    try:
        assert ensure_trust_domain(acme.schema_name) is False
    finally:
        settings.VAULT_ADDR = addr
        vault.reset_client()


def test_workloads_live_in_their_tenants_schema(acme: Tenant, globex: Tenant) -> None:
    from workloads.models import Workload

    make_workload(acme, "api", "/billing/api", issue=False)
    with schema_context(globex.schema_name):
        assert not Workload.objects.filter(name="api").exists()


def test_vault_itself_refuses_a_uri_outside_the_tenants_trust_domain(acme: Tenant) -> None:
    mount = vault.pki_mount(acme.schema_name)
    with pytest.raises(Exception, match="not valid for this role"):
        vault.client().secrets.pki.generate_certificate(
            vault.SVID_ROLE,
            common_name="",
            extra_params={"uri_sans": "spiffe://globex.authsec.local/x"},
            mount_point=mount,
        )
    assert _role(acme.schema_name)["allowed_uri_sans"] == ["spiffe://acme.authsec.local/*"]


def test_a_mount_keeps_its_trust_domain_for_life(acme: Tenant) -> None:
    with pytest.raises(vault.VaultError, match="another trust domain; refusing to change it"):
        vault.pki_ensure(acme.schema_name, "globex.authsec.local")
    assert _role(acme.schema_name)["allowed_uri_sans"] == ["spiffe://acme.authsec.local/*"]
