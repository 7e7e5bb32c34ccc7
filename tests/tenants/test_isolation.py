"""Each tenant's rows live in its own schema: nothing written in acme is visible from globex."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

import audit
from accounts.models import User
from audit.models import AuditEvent
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db


def test_user_written_in_acme_is_invisible_from_globex(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        UserFactory(email="only-in-acme@acme.test")
        assert User.objects.filter(email="only-in-acme@acme.test").exists()
    with schema_context(globex.schema_name):
        assert not User.objects.filter(email="only-in-acme@acme.test").exists()
    assert not User.objects.filter(email="only-in-acme@acme.test").exists()  # nor from the public schema


def test_audit_event_written_in_acme_is_invisible_from_globex(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        audit.record("tests", "test.isolation_marker")
    with schema_context(globex.schema_name):
        assert not AuditEvent.objects.filter(action="test.isolation_marker").exists()
    with schema_context(acme.schema_name):
        assert AuditEvent.objects.filter(action="test.isolation_marker").count() == 1


def _login(client: Client, tenant: str, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/t/{tenant}/admin/login/",
        {"username": email, "password": password, "next": f"/t/{tenant}/admin/"},
    )


def test_acme_admin_logs_in_to_acme(acme: Tenant) -> None:
    client = Client()
    response = _login(client, "acme", "admin@acme.test", ADMIN_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/admin/"
    assert client.get("/t/acme/admin/").status_code == 200


def test_acme_admin_is_rejected_at_globex(globex: Tenant) -> None:
    client = Client()
    response = _login(client, "globex", "admin@acme.test", ADMIN_PASSWORD)
    assert response.status_code == 200  # the form again, with an error
    assert "Please enter the correct email" in response.content.decode()
    assert client.get("/t/globex/admin/").status_code == 302  # still anonymous: sent to the login page


def test_acme_session_is_not_a_session_in_globex(acme: Tenant, globex: Tenant) -> None:
    client = Client()
    _login(client, "acme", "admin@acme.test", ADMIN_PASSWORD)
    # Even if the browser sent acme's cookie to globex, globex has no such session.
    response = client.get("/t/globex/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/t/globex/admin/login/")


def test_session_cookie_is_scoped_to_the_tenant_path(acme: Tenant) -> None:
    client = Client()
    response = _login(client, "acme", "admin@acme.test", ADMIN_PASSWORD)
    assert response.cookies["sessionid"]["path"] == "/t/acme/"
    assert response.cookies["sessionid"]["httponly"] is True


def test_acme_admin_dashboard_does_not_list_tenants(acme: Tenant) -> None:
    client = Client()
    _login(client, "acme", "admin@acme.test", ADMIN_PASSWORD)
    page = client.get("/t/acme/admin/").content.decode()
    assert "/t/acme/admin/accounts/user/" in page
    assert "tenants/tenant" not in page


def test_tenant_url_of_a_platform_model_is_404_in_a_tenant(acme: Tenant) -> None:
    client = Client()
    _login(client, "acme", "admin@acme.test", ADMIN_PASSWORD)
    assert client.get("/t/acme/admin/tenants/tenant/").status_code == 404


def test_row_written_in_acme_is_invisible_over_http_from_globex(acme: Tenant, globex: Tenant) -> None:
    with schema_context(acme.schema_name):
        secret_user = UserFactory(email="acme-only@acme.test")
    acme_admin, globex_admin = Client(), Client()
    _login(acme_admin, "acme", "admin@acme.test", ADMIN_PASSWORD)
    _login(globex_admin, "globex", "admin@globex.test", ADMIN_PASSWORD)

    assert "acme-only@acme.test" in acme_admin.get("/t/acme/admin/accounts/user/").content.decode()
    assert "acme-only@acme.test" not in globex_admin.get("/t/globex/admin/accounts/user/").content.decode()
    # Guessing the row's id in globex finds nothing (the admin redirects to its index with a message).
    response = globex_admin.get(f"/t/globex/admin/accounts/user/{secret_user.pk}/change/", follow=True)
    assert "acme-only@acme.test" not in response.content.decode()
    assert "doesn’t exist" in response.content.decode()
