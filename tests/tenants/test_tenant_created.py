"""After the commit that creates a tenant, `tenants.signals.tenant_created` has `oauth` make its signing key and
`workloads` its SPIFFE CA; a receiver that fails is logged and blocks neither the tenant nor the others."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from authsec_site.lib import vault
from oauth.models import SigningKey
from tenants.models import Tenant
from tenants.services import create_tenant
from tenants.signals import tenant_created

pytestmark = pytest.mark.django_db


def _broken_receiver(sender: Any, schema_name: str, **kwargs: Any) -> None:
    raise RuntimeError(f"provisioning {schema_name} failed")


@pytest.fixture
def broken_receiver() -> Iterator[None]:
    tenant_created.connect(_broken_receiver, dispatch_uid="tests-broken-receiver")
    yield
    tenant_created.disconnect(dispatch_uid="tests-broken-receiver")


def test_key_and_ca_come_after_commit_and_a_failing_receiver_blocks_nothing(
    broken_receiver, django_capture_on_commit_callbacks, caplog
) -> None:  # type: ignore[no-untyped-def]
    slug = f"tc{uuid.uuid4().hex[:8]}"
    schema = f"tenant_{slug}"
    with caplog.at_level(logging.ERROR, logger="tenants.services"), django_capture_on_commit_callbacks(execute=True):
        create_tenant(actor="tests", slug=slug, name="Tenant created", admin_email=f"admin@{slug}.test")
        with schema_context(schema):
            assert not SigningKey.objects.exists()  # nothing outside Postgres before the commit
        assert f"{vault.pki_mount(schema)}/" not in vault.client().sys.list_mounted_secrets_engines()["data"]
    try:
        assert Tenant.objects.filter(slug=slug, is_active=True).exists()
        with schema_context(schema):
            assert SigningKey.objects.filter(retired_at__isnull=True).count() == 1
        assert f"{vault.pki_mount(schema)}/" in vault.client().sys.list_mounted_secrets_engines()["data"]
        failures = [r for r in caplog.records if "outside Postgres failed" in r.getMessage()]
        assert len(failures) == 1 and schema in failures[0].getMessage()
        assert "_broken_receiver" in failures[0].getMessage()
    finally:
        vault.client().sys.disable_secrets_engine(vault.pki_mount(schema))
        name = vault.tenant_policy_name(schema)
        vault.client().auth.approle.delete_role(name, mount_point=settings.VAULT_APPROLE_MOUNT)
        vault.client().sys.delete_policy(name)
