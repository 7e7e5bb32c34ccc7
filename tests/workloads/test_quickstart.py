"""QuickStartSVID for tool code: the seed's API over a workload's files (issued on first use)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tests.workloads.conftest import make_workload
from workloads import QuickStartSVID, SpiffeDisabledError
from workloads.models import Workload
from workloads.quickstart import QuickStartSVID as Direct

pytestmark = pytest.mark.django_db


def test_it_is_importable_from_the_package() -> None:
    assert QuickStartSVID is Direct


def test_first_use_issues_the_svid_and_exposes_the_seed_api(acme: Tenant, svid_dir: Path) -> None:
    make_workload(acme, "api", "/billing/api", issue=False)
    svid = async_to_sync(QuickStartSVID.initialize)(workload="api", tenant="acme")

    assert svid is not None
    assert svid.spiffe_id == "spiffe://acme.authsec.local/billing/api"
    assert svid.cert_file_path == svid_dir / "acme" / "api" / "svid.crt"
    assert svid.key_file_path == svid_dir / "acme" / "api" / "svid.key"
    assert svid.ca_file_path == svid_dir / "acme" / "api" / "ca.crt"
    assert svid.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert svid.private_key.lstrip("-").startswith("BEGIN PRIVATE KEY")
    assert svid.trust_bundle.startswith("-----BEGIN CERTIFICATE-----")
    client = svid.create_ssl_context_for_client()
    server = svid.create_ssl_context_for_server()
    assert client.verify_mode == ssl.CERT_REQUIRED and server.verify_mode == ssl.CERT_REQUIRED
    assert client.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_the_current_tenant_is_used_inside_a_tenant(in_acme: Tenant) -> None:
    make_workload(in_acme, "api", "/billing/api")
    from django.db import connection

    connection.set_tenant(in_acme)
    svid = async_to_sync(QuickStartSVID.initialize)(workload="api")
    assert svid is not None and svid.spiffe_id.endswith("/billing/api")


def test_an_unknown_or_disabled_workload_means_spiffe_is_off(acme: Tenant) -> None:
    workload = make_workload(acme, "api", "/billing/api", issue=False)
    assert async_to_sync(QuickStartSVID.initialize)(workload="nope", tenant="acme") is None
    with schema_context(acme.schema_name):
        Workload.objects.filter(pk=workload.pk).update(is_enabled=False)
    with pytest.raises(SpiffeDisabledError, match="not registered and enabled in tenant acme"):
        async_to_sync(QuickStartSVID.initialize)(workload="api", tenant="acme", raise_on_disabled=True)


def test_a_workload_of_another_tenant_is_not_reachable_by_name(acme: Tenant, globex: Tenant) -> None:
    make_workload(acme, "api", "/billing/api", issue=False)
    assert async_to_sync(QuickStartSVID.initialize)(workload="api", tenant="globex") is None


def test_client_id_is_accepted_for_the_seeds_signature(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SPIFFE_ENDPOINT_SOCKET = ""
    assert async_to_sync(QuickStartSVID.initialize)(client_id="abc-main-client") is None
