"""Accounts in the test tenants: the passwords the suite signs in with, and a dashboard login."""

from __future__ import annotations

from django.test import Client

from tenants.models import Tenant

ADMIN_PASSWORD = "correct-horse-battery-staple"  # every test tenant's first admin (admin@<slug>.test)
FACTORY_PASSWORD = "pass-word-123"  # UserFactory's


def log_in(tenant: Tenant | str, email: str, password: str = FACTORY_PASSWORD) -> Client:
    """A test client logged in to the dashboard of `tenant` (or of the tenant with that slug) through the real
    login form; for the public schema's tenant, to the platform admin."""
    if isinstance(tenant, str):
        root = f"/t/{tenant}/admin/"
    else:
        root = "/admin/" if tenant.is_public else f"{tenant.url_prefix}admin/"
    client = Client()
    response = client.post(f"{root}login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client
