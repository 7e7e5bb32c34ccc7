"""PKI: each tenant's SPIFFE CA (workloads app; docs/spiffe.md).

The mount, its root CA and the "svid" role are platform duties (`client()`). Issuing and reading the CA use the
tenant's own credentials (`_as_tenant`; its policy allows <mount>/issue/*, ca/pem, ca_chain, cert/*). Private
keys returned by `pki_issue_svid` are handed to the caller only, never logged or stored here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from authsec_site.lib.vault.approle import _as_tenant
from authsec_site.lib.vault.client import VaultError, _guard, client
from authsec_site.lib.vault.paths import pki_mount

SVID_ROLE = "svid"


def _pki_role_params(trust_domain: str) -> dict[str, Any]:
    # py-spiffe rejects leaves without BasicConstraints (CA:FALSE) or with key usages beyond DigitalSignature.
    return {
        "allowed_uri_sans": [f"spiffe://{trust_domain}/*"],
        "allow_any_name": False,
        "allowed_domains": [],
        "allow_ip_sans": False,
        "allow_localhost": False,
        "enforce_hostnames": False,
        "require_cn": False,
        "basic_constraints_valid_for_non_ca": True,
        "key_usage": ["DigitalSignature"],
        "ext_key_usage": ["ServerAuth", "ClientAuth"],
        "key_type": "ec",
        "key_bits": 256,
        "ttl": f"{settings.SVID_DEFAULT_TTL}s",
        "max_ttl": f"{settings.SVID_MAX_TTL}s",
        "no_store": False,
    }


def pki_ensure(schema_name: str, trust_domain: str) -> bool:
    """With the platform credential: make sure the tenant's PKI mount, root CA and SVID role exist.

    Idempotent (returns True only when it generated the CA); called at tenant creation and again on first use
    (Vault was down then, or a dev server lost its in-memory state)."""
    mount = pki_mount(schema_name)
    mounts = _guard("list secrets engines", lambda: client().sys.list_mounted_secrets_engines())
    if f"{mount}/" not in mounts.get("data", mounts):
        _guard(
            "mount the tenant's PKI engine",
            lambda: client().sys.enable_secrets_engine(
                "pki",
                path=mount,
                description=f"SPIFFE CA of trust domain {trust_domain}",
                config={"max_lease_ttl": f"{settings.SPIFFE_CA_TTL}s"},
            ),
        )
    created = False
    existing = _guard("read the tenant's CA", lambda: client().secrets.pki.read_ca_certificate(mount_point=mount))
    if not str(existing or "").strip():
        _guard(
            "generate the tenant's root CA",
            lambda: client().secrets.pki.generate_root(
                type="internal",
                common_name=f"{trust_domain} SPIFFE CA",
                extra_params={
                    "ttl": f"{settings.SPIFFE_CA_TTL}s",
                    "uri_sans": f"spiffe://{trust_domain}",
                    "key_type": "ec",
                    "key_bits": 256,
                },
                mount_point=mount,
            ),
        )
        created = True
    params = _pki_role_params(trust_domain)
    try:
        current = _guard(
            "read the tenant's SVID role",
            lambda: client().secrets.pki.read_role(SVID_ROLE, mount_point=mount),
        )["data"]
    except VaultError as exc:
        if exc.reason != "not_found":
            raise
        current = None
    if current is not None and current.get("allowed_uri_sans") != params["allowed_uri_sans"]:
        # A mount keeps its trust domain for life: never widen a tenant's CA to another tenant's IDs.
        raise VaultError(
            f"The PKI mount {mount} issues IDs of another trust domain; refusing to change it to {trust_domain}.",
            reason="invalid",
        )
    _guard(
        "write the tenant's SVID role",
        lambda: client().secrets.pki.create_or_update_role(SVID_ROLE, extra_params=params, mount_point=mount),
    )
    return created


def _pki_first_use(exc: VaultError) -> bool:
    # A missing mount answers 404; a missing role 400 "unknown role". Any other refusal (e.g. a URI SAN the
    # role does not allow) is final and must not trigger provisioning.
    return exc.reason == "not_found" or (exc.reason == "invalid" and "unknown role" in str(exc))


def pki_ca_pem(schema_name: str, trust_domain: str) -> str:
    """The PEM of the tenant's CA (its trust bundle), read with the tenant's credentials; provisions the PKI
    first when it is missing."""
    mount = pki_mount(schema_name)

    def read() -> str:
        pem = _as_tenant(
            schema_name, "read the tenant's CA", lambda c: c.secrets.pki.read_ca_certificate(mount_point=mount)
        )
        return str(pem or "").strip()

    try:
        pem = read()
    except VaultError as exc:
        if not _pki_first_use(exc):
            raise
        pem = ""
    if not pem:
        pki_ensure(schema_name, trust_domain)
        pem = read()
    return pem


def pki_issue_svid(schema_name: str, trust_domain: str, spiffe_id: str, ttl_seconds: int) -> dict[str, Any]:
    """Issue one X.509-SVID for `spiffe_id` from the tenant's CA with the tenant's credentials:
    ``{certificate, ca_chain, private_key, serial_number, expiration}`` (PEM strings). Provisions on first use."""
    if not spiffe_id.startswith(f"spiffe://{trust_domain}/"):
        raise VaultError(f"{spiffe_id!r} is not in trust domain {trust_domain}.", reason="invalid")
    mount = pki_mount(schema_name)

    def issue() -> dict[str, Any]:
        return _as_tenant(
            schema_name,
            "issue an X.509-SVID",
            lambda c: c.secrets.pki.generate_certificate(
                SVID_ROLE,
                common_name="",
                extra_params={
                    "uri_sans": spiffe_id,
                    "ttl": f"{int(ttl_seconds)}s",
                    "exclude_cn_from_sans": True,
                    "format": "pem",
                    "private_key_format": "pkcs8",
                },
                mount_point=mount,
            ),
        )

    try:
        response = issue()
    except VaultError as exc:
        if not _pki_first_use(exc):
            raise
        pki_ensure(schema_name, trust_domain)
        response = issue()
    data = response["data"]
    return {
        "certificate": data["certificate"],
        "ca_chain": list(data.get("ca_chain") or [data["issuing_ca"]]),
        "private_key": data["private_key"],
        "serial_number": data["serial_number"],
        "expiration": int(data["expiration"]),
    }
