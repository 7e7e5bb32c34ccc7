"""Signals `tenants` sends to the layers above it, which connect receivers in their `AppConfig.ready()`."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the commit that created a tenant (`tenants.services.provision_outside_postgres`), with
# `schema_name`, to provision what lives outside Postgres: `oauth` creates the tenant's signing key, `workloads`
# its SPIFFE CA and SVID role. Sent robustly: a receiver that fails is logged and its piece is made on first use,
# so a Vault outage never blocks tenant creation. Receivers run in the public schema; they open the tenant's.
tenant_created = Signal()
