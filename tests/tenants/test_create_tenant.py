"""create_tenant: schema, route, first admin and audit events — or nothing at all when it fails."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from accounts.models import User
from audit.models import AuditEvent
from tenants.models import Domain, Tenant
from tenants.services import create_tenant
from tests.support.admin_form import AdminForm

pytestmark = pytest.mark.django_db


def test_creates_schema_domain_admin_and_audit_events() -> None:
    created = create_tenant(
        actor="tests",
        slug="initech",
        name="Initech",
        admin_email="Boss@Initech.test",
        admin_password="a-long-password-1",
    )
    tenant = created.tenant
    assert tenant.schema_name == "tenant_initech"
    assert schema_exists("tenant_initech")
    assert Domain.objects.get(tenant=tenant).domain == "initech"
    assert created.generated_password is None
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        assert (admin.email, admin.is_staff, admin.is_superuser) == ("boss@initech.test", True, True)
        assert admin.check_password("a-long-password-1")
        event = AuditEvent.objects.get(action="tenant.created")
        assert event.actor_label == "platform:tests"
    assert AuditEvent.objects.filter(action="tenant.created", target_id=str(tenant.pk)).count() == 1


def test_generates_a_password_when_none_is_given() -> None:
    created = create_tenant(actor="tests", slug="hooli", name="Hooli", admin_email="admin@hooli.test")
    assert created.generated_password and len(created.generated_password) >= 20
    with schema_context(created.tenant.schema_name):
        assert User.objects.get().check_password(created.generated_password)


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("Acme!", "lowercase letters"),
        ("a", "lowercase letters"),
        ("public", "reserved"),
        ("admin", "reserved"),
        ("acme", "already exists"),
        ("-x-", "lowercase letters"),
    ],
)
def test_rejects_bad_or_taken_slugs(slug: str, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        create_tenant(actor="tests", slug=slug, name="X", admin_email="a@x.test")
    assert message in str(excinfo.value)
    assert Tenant.objects.count() == 3  # public, acme, globex


def test_failure_after_schema_creation_leaves_nothing_behind() -> None:
    # Passes the address check but is too long for the user table: fails after the schema exists.
    too_long = "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "test"
    with pytest.raises(ValidationError):
        create_tenant(actor="tests", slug="doomed", name="Doomed", admin_email=too_long, admin_password="pw-123456789")
    assert not Tenant.objects.filter(slug="doomed").exists()
    assert not Domain.objects.filter(domain="doomed").exists()
    assert not schema_exists("tenant_doomed")
    assert not AuditEvent.objects.filter(action="tenant.created", data__slug="doomed").exists()


def test_management_command_creates_a_tenant_reachable_over_http() -> None:
    out = io.StringIO()
    call_command("create_tenant", "umbrella", "--name", "Umbrella", "--admin-email", "admin@umbrella.test", stdout=out)
    assert "Created tenant umbrella" in out.getvalue()
    assert "Generated admin password (shown once): " in out.getvalue()
    password = out.getvalue().split("(shown once): ")[1].strip()
    client = Client()
    response = client.post("/t/umbrella/admin/login/", {"username": "admin@umbrella.test", "password": password})
    assert response.status_code == 302


def test_management_command_reports_validation_errors_clearly() -> None:
    with pytest.raises(CommandError, match="slug: .*reserved"):
        call_command("create_tenant", "admin", "--name", "X", "--admin-email", "a@x.test")


def test_platform_admin_creates_a_tenant_through_the_form() -> None:
    with schema_context("public"):
        User.objects.create_superuser("root@platform.test", "platform-pass-123")
    client = Client()
    assert (
        client.post("/admin/login/", {"username": "root@platform.test", "password": "platform-pass-123"}).status_code
        == 302
    )
    response = client.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "cyberdyne",
            "name": "Cyberdyne",
            "admin_email": "admin@cyberdyne.test",
            "admin_password1": "skynet-is-fine-42",
            "admin_password2": "skynet-is-fine-42",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = Tenant.objects.get(slug="cyberdyne")
    assert schema_exists(tenant.schema_name)
    [event] = AuditEvent.objects.filter(action="tenant.created", target_id=str(tenant.pk))
    assert (event.actor_label, event.data) == (
        "root@platform.test",
        {"slug": "cyberdyne", "admin": "admin@cyberdyne.test"},
    )
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()
    login = Client().post(
        "/t/cyberdyne/admin/login/", {"username": "admin@cyberdyne.test", "password": "skynet-is-fine-42"}
    )
    assert login.status_code == 302


def test_platform_admin_form_shows_slug_errors() -> None:
    with schema_context("public"):
        User.objects.create_superuser("root2@platform.test", "platform-pass-123")
    client = Client()
    client.post("/admin/login/", {"username": "root2@platform.test", "password": "platform-pass-123"})
    response = client.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "acme",
            "name": "Dup",
            "admin_email": "a@b.test",
            "admin_password1": "x-long-pass-99",
            "admin_password2": "x-long-pass-99",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_platform_admin_renames_and_deactivates_through_the_services() -> None:
    with schema_context("public"):
        User.objects.create_superuser("root3@platform.test", "platform-pass-123")
    client = Client()
    client.post("/admin/login/", {"username": "root3@platform.test", "password": "platform-pass-123"})
    globex = Tenant.objects.get(slug="globex")
    url = f"/admin/tenants/tenant/{globex.pk}/change/"
    form = AdminForm(client.get(url).content.decode())
    form.set("name", "Globex Inc")
    response = client.post(url, form.data())
    assert response.status_code == 302, response.content.decode()[:2000]
    [renamed] = AuditEvent.objects.filter(action="tenant.renamed", target_id=str(globex.pk))
    assert (renamed.actor_label, renamed.data) == (
        "root3@platform.test",
        {"before": "Globex Corporation", "after": "Globex Inc"},
    )
    assert not AuditEvent.objects.filter(action="tenant.deactivated", target_id=str(globex.pk)).exists()

    response = client.post("/admin/tenants/tenant/", {"action": "deactivate", "_selected_action": [globex.pk]})
    assert response.status_code == 302
    assert Tenant.objects.get(pk=globex.pk).is_active is False
    [off] = AuditEvent.objects.filter(action="tenant.deactivated", target_id=str(globex.pk))
    assert off.actor_label == "root3@platform.test"
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()
    # Tenants are never deleted from the dashboard (deactivate instead).
    assert client.post(f"/admin/tenants/tenant/{globex.pk}/delete/", {"post": "yes"}).status_code == 403
