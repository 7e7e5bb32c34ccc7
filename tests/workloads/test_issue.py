"""issue_svid: Vault PKI → py-spiffe-valid files on disk (atomic, key 0600), public facts in Postgres, audit."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import schema_context
from spiffe import X509Bundle, X509Svid
from spiffe.spiffe_id.spiffe_id import TrustDomain

from audit.models import AuditEvent
from authsec_site.lib import vault
from tenants.models import Tenant
from tests.workloads.conftest import make_workload
from workloads.models import Workload
from workloads.services import SvidIssueError, issue_svid

pytestmark = pytest.mark.django_db


def test_issue_writes_a_valid_svid_key_and_bundle(acme: Tenant, svid_dir: Path) -> None:
    workload = make_workload(acme, "api", "/billing/api", ttl=600)
    directory = svid_dir / "acme" / "api"

    svid = X509Svid.load(
        str(directory / "svid.crt"), str(directory / "svid.key"), serialization.Encoding.PEM
    )  # py-spiffe's own checks
    bundle = X509Bundle.load(TrustDomain("acme.authsec.local"), str(directory / "ca.crt"), serialization.Encoding.PEM)

    assert str(svid.spiffe_id) == "spiffe://acme.authsec.local/billing/api"
    assert [cert.subject for cert in bundle.x509_authorities] == [svid.leaf.issuer]
    assert stat.S_IMODE((directory / "svid.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not list(directory.glob(".*.tmp")), "no temporary file is left behind"
    lifetime = svid.leaf.not_valid_after_utc - svid.leaf.not_valid_before_utc
    assert dt.timedelta(seconds=590) <= lifetime <= dt.timedelta(seconds=650)
    assert workload.svid_serial and int(workload.svid_serial.replace(":", ""), 16) == svid.leaf.serial_number
    assert workload.svid_not_after == svid.leaf.not_valid_after_utc
    assert workload.status() == Workload.Status.VALID


def test_the_bundle_is_the_tenants_ca_from_vault(acme: Tenant, svid_dir: Path) -> None:
    make_workload(acme, "api", "/billing/api")
    ca = vault.pki_ca_pem(acme.schema_name, "acme.authsec.local")
    assert (svid_dir / "acme" / "api" / "ca.crt").read_text().strip() == ca.strip()


def test_the_private_key_is_never_stored_in_postgres(acme: Tenant, svid_dir: Path) -> None:
    make_workload(acme, "api", "/billing/api")
    key = (svid_dir / "acme" / "api" / "svid.key").read_text()
    body = key.splitlines()[1]
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(w)::text FROM workloads_workload w")
        rows = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT coalesce(string_agg(data::text, ' '), '') FROM audit_auditevent")
        events = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in rows and body not in rows
    assert "PRIVATE KEY" not in events and body not in events


def test_issue_is_audited(acme: Tenant) -> None:
    workload = make_workload(acme, "api", "/billing/api")
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.get(
            action="workloads.svid_issued", target_type="workloads.workload", target_id=str(workload.pk)
        )
    assert event.actor_label == "tests" and event.outcome == "success"
    assert event.data["spiffe_id"] == "spiffe://acme.authsec.local/billing/api"
    assert event.data["serial"] == workload.svid_serial


def test_renewal_replaces_the_files_and_records_the_previous_serial(acme: Tenant, svid_dir: Path) -> None:
    first = make_workload(acme, "api", "/billing/api")
    old_key = (svid_dir / "acme" / "api" / "svid.key").read_bytes()
    with schema_context(acme.schema_name):
        second = issue_svid(first, actor="tests").workload
        event = AuditEvent.objects.filter(action="workloads.svid_issued", target_id=str(first.pk)).latest("seq")
    assert second.svid_serial != first.svid_serial
    assert (svid_dir / "acme" / "api" / "svid.key").read_bytes() != old_key
    assert event.data["replaced_serial"] == first.svid_serial


def test_when_vault_is_unreachable_the_old_files_stay_and_the_failure_is_recorded(
    acme: Tenant, svid_dir: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    workload = make_workload(acme, "api", "/billing/api")
    directory = svid_dir / "acme" / "api"
    before = {name: (directory / name).read_bytes() for name in ("svid.crt", "svid.key", "ca.crt")}
    settings.VAULT_ADDR = "http://127.0.0.1:9"  # nothing listens there
    vault.reset_client()
    vault.forget_tenant_clients()
    try:
        with schema_context(acme.schema_name), pytest.raises(SvidIssueError, match="unreachable") as caught:
            issue_svid(workload, actor="tests")
    finally:
        settings.VAULT_ADDR = vault.settings.VAULT_ADDR
    vault.reset_client()
    vault.forget_tenant_clients()

    assert "Traceback" not in str(caught.value) and "token" not in str(caught.value).lower()
    assert {name: (directory / name).read_bytes() for name in before} == before
    assert not list(directory.glob(".*.tmp"))
    with schema_context(acme.schema_name):
        workload.refresh_from_db()
        failed = AuditEvent.objects.get(action="workloads.svid_issue_failed", target_id=str(workload.pk))
    assert workload.status() == Workload.Status.FAILED and "unreachable" in workload.last_error
    assert workload.svid_serial, "the previous SVID's facts are kept"
    assert failed.outcome == "failure" and "unreachable" in failed.data["error"]


def test_a_disabled_workload_gets_no_svid(acme: Tenant, svid_dir: Path) -> None:
    workload = make_workload(acme, "api", "/billing/api", issue=False)
    with schema_context(acme.schema_name):
        Workload.objects.filter(pk=workload.pk).update(is_enabled=False)
        with pytest.raises(SvidIssueError, match="disabled"):
            issue_svid(workload, actor="tests")
    assert not (svid_dir / "acme" / "api").exists()


def test_only_if_due_leaves_a_fresh_svid_alone(acme: Tenant) -> None:
    workload = make_workload(acme, "api", "/billing/api")
    with schema_context(acme.schema_name):
        result = issue_svid(workload, only_if_due=True)
    assert result.issued is False and result.workload.svid_serial == workload.svid_serial


@pytest.mark.parametrize(
    "path",
    ["billing", "/", "/billing/", "/a//b", "/a/./b", "/a/../b", "/a b", "/ünï", "/a?b", "/" + "x" * 300],
)
def test_invalid_spiffe_paths_are_rejected_with_a_clear_message(in_acme: Tenant, path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Workload(name="w", spiffe_path=path).full_clean()
    assert "spiffe_path" in caught.value.message_dict


def test_a_ttl_above_the_pki_limit_is_rejected(in_acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SVID_MAX_TTL = 3600
    with pytest.raises(ValidationError, match="SVID_MAX_TTL"):
        Workload(name="w", spiffe_path="/w", ttl_seconds=7200).full_clean()


def test_status_follows_the_renewal_fraction_and_expiry(in_acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SVID_RENEW_FRACTION = 0.5
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    workload = Workload(name="w", spiffe_path="/w", svid_not_before=start, svid_not_after=start + dt.timedelta(hours=2))
    assert workload.status(start + dt.timedelta(minutes=59)) == Workload.Status.VALID
    assert workload.status(start + dt.timedelta(minutes=60)) == Workload.Status.EXPIRING
    assert workload.status(start + dt.timedelta(hours=2)) == Workload.Status.EXPIRED
    workload.last_error = "Vault at … is unreachable"
    assert workload.status(start + dt.timedelta(minutes=1)) == Workload.Status.FAILED
    assert Workload(name="n", spiffe_path="/n").status() == Workload.Status.NONE
