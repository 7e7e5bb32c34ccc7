"""The callers of an application's "Connect a client" page, its Test, its user × tool matrix and the matrix's CSV:
anonymous, an end user (signed in, not staff), an auditor (staff who may read the audit log), the tenant's admin,
and another tenant's admin. Only staff with the view permission on applications (and, for the matrix, on users)
get the pages; the generic matrix (test_dashboard.py) checks exactly which permissions."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from rbac.models import Application
from tenants.models import Tenant
from tests.factories import ApplicationFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, FACTORY_PASSWORD, log_in
from tests.support.matrix import grant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

PAGES = ("connect/", "matrix/", "matrix.csv")


def _urls(acme: Tenant) -> list[tuple[str, str]]:
    with schema_context(acme.schema_name):
        app = ApplicationFactory(slug="pages-matrix", name="<b>Pages</b>")
    root = f"/t/acme/admin/rbac/application/{app.pk}/"
    return [("get", root + page) for page in PAGES] + [("post", root + "connect/")]


def _send(client: Client, method: str, url: str) -> int:
    return getattr(client, method)(url).status_code


def test_anonymous_goes_to_the_login_page(acme: Tenant) -> None:
    for method, url in _urls(acme):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/"), url


def test_an_end_user_is_not_let_in(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        user = UserFactory(email="end-user@acme.test")
        grant(acme, user, ["rbac.view_application", "accounts.view_user"])  # permissions without staff: nothing
    client = Client()  # signed in through the end users' own login form
    response = client.post("/t/acme/accounts/login/", {"username": user.email, "password": FACTORY_PASSWORD})
    assert response.status_code == 302
    for method, url in _urls(acme):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


def test_an_auditor_is_refused(acme: Tenant) -> None:
    with schema_context(acme.schema_name):
        UserFactory(email="auditor@acme.test", is_staff=True)
        grant(acme, User.objects.get(email="auditor@acme.test"), ["audit.review_auditevent"])
    client = log_in(acme, "auditor@acme.test", FACTORY_PASSWORD)
    for method, url in _urls(acme):
        assert _send(client, method, url) == 403, url


def test_the_tenant_admin_sees_every_page_escaped(acme: Tenant) -> None:
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    for method, url in _urls(acme):
        response = getattr(client, method)(url)
        assert response.status_code == 200, url
        if not url.endswith(".csv"):
            text = response.content.decode()
            assert "<b>Pages</b>" not in text and "&lt;b&gt;Pages&lt;/b&gt;" in text, url


def test_another_tenants_admin_goes_to_the_login_page(acme: Tenant, globex: Tenant) -> None:
    client = log_in(globex, "admin@globex.test", ADMIN_PASSWORD)
    for method, url in _urls(acme):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/t/acme/admin/login/"), url


def test_an_unknown_application_is_404(acme: Tenant) -> None:
    client = log_in(acme, "admin@acme.test", ADMIN_PASSWORD)
    with schema_context(acme.schema_name):
        missing = (Application.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    assert client.get(f"/t/acme/admin/rbac/application/{missing}/connect/").status_code == 404
    assert client.get(f"/t/acme/admin/rbac/application/{missing}/matrix/").status_code == 404
