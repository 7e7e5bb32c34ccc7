"""Accounts in the test tenants: the passwords the suite signs in with, and a dashboard login."""

from __future__ import annotations

from django.test import Client

from tenants.models import Tenant

ADMIN_PASSWORD = "correct-horse-battery-staple"  # every test tenant's first admin (admin@<slug>.test)
FACTORY_PASSWORD = "pass-word-123"  # UserFactory's


def log_in(tenant: Tenant | str, email: str, password: str = FACTORY_PASSWORD) -> Client:
    """A test client logged in to the dashboard of `tenant` (or of the tenant with that slug) through the real
    login form."""
    slug = tenant if isinstance(tenant, str) else tenant.slug
    client = Client()
    response = client.post(f"/t/{slug}/admin/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} failed"
    return client
