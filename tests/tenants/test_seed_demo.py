from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_seed_demo_is_idempotent_and_creates_the_demo_users() -> None:
    call_command("seed_demo")
    call_command("seed_demo")
    with schema_context(Tenant.objects.get(slug="acme").schema_name):
        emails = set(User.objects.values_list("email", flat=True))
        assert {"admin@acme.test", "alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test"} <= emails
        assert User.objects.get(email="alice@acme.test").check_password("authsec-demo")
        assert not User.objects.get(email="alice@acme.test").is_staff
    with schema_context(Tenant.objects.get(slug="globex").schema_name):
        assert set(User.objects.values_list("email", flat=True)) == {"admin@globex.test", "erin@globex.test"}
    assert User.objects.filter(email="platform@authsec.test", is_superuser=True).count() == 1


@override_settings(DEBUG=False)
def test_seed_demo_refuses_with_debug_off() -> None:
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")


@override_settings(DEBUG=False, AUTHSEC_DEMO_PASSWORD="another-demo-pass")
def test_seed_demo_force_uses_the_configured_password() -> None:
    call_command("seed_demo", "--force")
    with schema_context("tenant_acme"):
        assert User.objects.get(email="carol@acme.test").check_password("another-demo-pass")
