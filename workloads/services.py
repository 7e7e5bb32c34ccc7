"""Writes of the workloads app: workload registrations, provisioning a tenant's trust domain, issuing and renewing
X.509-SVIDs, publishing bundles.

`issue_svid` is the one path to a new SVID (dashboard action, renewal task, QuickStartSVID first use): it gets
the certificate, key and bundle from the tenant's Vault PKI, checks them with py-spiffe, writes the files
atomically, then records the public facts and an audit event. The private key is never stored in Postgres.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from jwcrypto import jwk
from spiffe import X509Svid
from spiffe.errors import PySpiffeError

import audit
from audit import writes
from audit.models import AuditEvent
from authsec_site.lib import vault
from workloads.files import SvidFileError, pem_blocks, workload_files, write_svid
from workloads.models import Workload, trust_domain_for

logger = logging.getLogger(__name__)
SYSTEM_ACTOR = "system:svid-renewal"


class SvidIssueError(Exception):
    """An SVID could not be issued or written; the message is safe to show (no secret, no stack trace)."""


class TrustBundleError(Exception):
    """The tenant's trust bundle could not be read from Vault."""


@dataclass(frozen=True)
class IssueResult:
    workload: Workload
    issued: bool  # False: the current SVID was still fresh and nothing was done (only_if_due)


def current_tenant() -> Any:
    """The tenant of the current schema (a real row: `schema_context` only sets a stand-in without a slug)."""
    from tenants.models import Tenant

    tenant = getattr(connection, "tenant", None)
    if tenant is None or connection.schema_name == "public":
        raise SvidIssueError("Workload identities belong to a tenant: open a tenant schema first.")
    if isinstance(tenant, Tenant):
        return tenant
    found = Tenant.objects.filter(schema_name=connection.schema_name).first()
    if found is None:
        raise SvidIssueError(f"No tenant owns schema {connection.schema_name}.")
    return found


def ensure_trust_domain(schema_name: str) -> bool:
    """Provision the tenant's SPIFFE CA and SVID role in Vault PKI (tenant creation). Never raises: when Vault
    is down, issuance and the bundle page provision on first use instead. True when it is in place."""
    from tenants.models import Tenant

    try:
        tenant = Tenant.objects.get(schema_name=schema_name)
        vault.pki_ensure(schema_name, trust_domain_for(tenant.slug))
    except Exception as exc:  # Vault outage, or a tenant row missing: provisioning happens on first use.
        logger.warning("SPIFFE CA of %s not provisioned now (%s); it will be on first use", schema_name, exc)
        return False
    return True


def _tenant_created(sender: Any, schema_name: str, **kwargs: Any) -> None:
    """`tenants.signals.tenant_created`: the new tenant's SPIFFE CA and SVID role (never raises)."""
    ensure_trust_domain(schema_name)


@writes.service
def save_workload(workload: Workload, *, actor: Any, m2m: Mapping[str, Iterable[Any]] | None = None) -> Workload:
    """Register a workload or change its registration (SPIFFE path, TTL, enabled); its SVID is `issue_svid`'s."""
    return writes.save(
        actor, workload, m2m=m2m, created="workloads.workload_created", changed="workloads.workload_changed"
    )


@writes.service
def delete_workload(workload: Workload, *, actor: Any) -> None:
    """Delete a workload's registration: no SVID is issued or renewed for it any more (files already written to
    its directory stay until the certificate expires)."""
    writes.delete(actor, workload, event="workloads.workload_deleted")


def _split_chain(certificate: str, ca_chain: list[str]) -> tuple[str, str]:
    """(leaf + intermediates, roots): the SVID file carries no self-signed root; the bundle holds the roots."""
    intermediates, roots = [], []
    for pem in ca_chain:
        for block in pem_blocks(pem):
            cert = x509.load_pem_x509_certificate(block.encode())
            (roots if cert.issuer == cert.subject else intermediates).append(block)
    if not roots:
        raise SvidIssueError("Vault returned no CA certificate with the SVID.")
    return "\n".join([certificate.strip(), *intermediates]), "\n".join(roots)


def _record(workload: Workload, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(workload, name, value)
    workload.save(update_fields=[*fields, "updated_at"])


def issue_svid(workload: Workload, *, actor: Any = SYSTEM_ACTOR, only_if_due: bool = False) -> IssueResult:
    """Issue a new SVID for `workload` in the current tenant and replace its files; audited either way.

    With `only_if_due`, do nothing while the current SVID is fresh and its files exist (safe to run twice).
    On failure the old files stay untouched, `last_error` is set and `SvidIssueError` is raised."""
    tenant = current_tenant()
    schema = connection.schema_name
    trust_domain = trust_domain_for(tenant.slug)
    files = workload_files(tenant.slug, workload.name)
    failure: str | None = None
    with transaction.atomic():
        locked = Workload.objects.select_for_update().get(pk=workload.pk)
        spiffe_id = locked.spiffe_id_in(tenant.slug)
        if only_if_due and not locked.is_renewal_due() and files.exist():
            return IssueResult(locked, issued=False)
        if not locked.is_enabled:
            raise SvidIssueError(f"Workload {locked.name} is disabled; enable it before issuing an SVID.")
        try:
            issued = vault.pki_issue_svid(schema, trust_domain, spiffe_id, locked.ttl_seconds)
            chain_pem, bundle_pem = _split_chain(issued["certificate"], issued["ca_chain"])
            # py-spiffe's own checks (one spiffe:// URI SAN, CA:FALSE, digitalSignature, key matches).
            svid = X509Svid.parse(chain_pem.encode(), issued["private_key"].encode())
            if str(svid.spiffe_id) != spiffe_id:
                raise SvidIssueError(f"Vault issued {svid.spiffe_id}, not {spiffe_id}.")
            write_svid(files, chain_pem, issued["private_key"], bundle_pem)
        except vault.VaultError as exc:
            failure = str(exc)
        except PySpiffeError as exc:
            failure = f"The certificate from Vault is not a valid X.509-SVID: {exc}"
        except SvidFileError as exc:
            failure = str(exc)
        except SvidIssueError as exc:
            failure = str(exc)
        except OSError as exc:
            failure = f"Cannot write the SVID files under {files.directory}: {exc.strerror or type(exc).__name__}."
        if failure is not None:
            _record(locked, last_error=failure[:500], last_error_at=timezone.now())
            audit.record(
                actor,
                "workloads.svid_issue_failed",
                target=locked,
                data={"spiffe_id": spiffe_id, "error": failure[:500]},
                outcome=AuditEvent.Outcome.FAILURE,
            )
        else:
            leaf = svid.leaf
            previous = locked.svid_serial
            _record(
                locked,
                svid_serial=issued["serial_number"],
                svid_not_before=leaf.not_valid_before_utc,
                svid_not_after=leaf.not_valid_after_utc,
                svid_issued_at=timezone.now(),
                last_error="",
                last_error_at=None,
            )
            audit.record(
                actor,
                "workloads.svid_issued",
                target=locked,
                data={
                    "spiffe_id": spiffe_id,
                    "serial": issued["serial_number"],
                    "not_after": leaf.not_valid_after_utc.isoformat(),
                    "replaced_serial": previous or None,
                },
            )
    if failure is not None:
        logger.warning("SVID of %s (%s) not issued: %s", workload.name, schema, failure)
        raise SvidIssueError(failure)
    logger.info("SVID of %s (%s) issued, serial %s", locked.name, schema, locked.svid_serial)
    return IssueResult(locked, issued=True)


# --- Trust bundle -----------------------------------------------------------------------------------------------


def trust_bundle_pem(tenant: Any) -> str:
    """The tenant's X.509 trust bundle (its CA certificates, PEM); provisions the CA on first use."""
    try:
        pem = vault.pki_ca_pem(tenant.schema_name, trust_domain_for(tenant.slug))
    except vault.VaultError as exc:
        raise TrustBundleError(str(exc)) from None
    if not pem:
        raise TrustBundleError("The tenant has no CA yet.")
    return pem.strip() + "\n"


def trust_bundle_jwks(tenant: Any, pem: str) -> dict[str, Any]:
    """The SPIFFE bundle format (a JWK Set; SPIFFE Trust Domain and Bundle spec §4): one ``x509-svid`` key per
    CA certificate, with the certificate in ``x5c``."""
    keys = []
    for block in pem_blocks(pem):
        cert = x509.load_pem_x509_certificate(block.encode())
        key = jwk.JWK.from_pyca(cert.public_key()).export_public(as_dict=True)
        key["use"] = "x509-svid"
        key["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        keys.append(key)
    return {"keys": keys, "spiffe_refresh_hint": max(60, settings.SVID_RENEWAL_INTERVAL)}
