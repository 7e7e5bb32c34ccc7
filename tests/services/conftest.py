"""Fixtures of the services tests alone: the demo users by first name, fresh Vault clients around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounts.models import User
from authsec_site.lib import vault
from rbac.demo import DEMO, seed_rbac
from services.sdk import drop_cached
from tenants.models import Tenant
from tests.factories import UserFactory


@pytest.fixture
def demo_users(in_acme: Tenant) -> dict[str, User]:
    users = {email: UserFactory(email=email) for email in DEMO["acme"]["users"]}
    seed_rbac("acme")
    return {email.split("@")[0]: user for email, user in users.items()}


@pytest.fixture(autouse=True)
def _fresh_vault_clients() -> Iterator[None]:
    vault.reset_client()
    drop_cached("tenant_acme")
    yield
    vault.reset_client()
    drop_cached("tenant_acme")
