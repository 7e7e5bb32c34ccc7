"""Acceptance: a service secret never appears in a Postgres dump, in admin HTML, in logs or in audit rows.

Everything goes through the real server (uvicorn + the tenant dashboard) and is committed, so the dump of
the test database holds whatever the feature stored."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator

import httpx2
import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import User
from authsec_site.lib import vault
from services import services
from services.models import Service
from services.sdk import read_credentials
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer
from tests.support.mcp import commit_in_acme
from tests.support.services import session_for, unique_secret

pytestmark = pytest.mark.django_db
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
NAME = "Leak check service"


def _csrf(page: httpx2.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, page.text[:2000]
    return match.group(1)


@pytest.fixture
def dashboard(asgi_server: LiveServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=asgi_server.url, follow_redirects=False, timeout=30) as http:
        page = http.get("/t/acme/admin/login/")
        login = http.post(
            "/t/acme/admin/login/",
            data={"csrfmiddlewaretoken": _csrf(page), "username": "admin@acme.test", "password": ADMIN_PASSWORD},
            headers={"Referer": f"{asgi_server.url}/t/acme/admin/login/"},
        )
        assert login.status_code == 302, login.text[:2000]
        yield http
    pk = commit_in_acme(lambda: Service.objects.filter(name=NAME).values_list("pk", flat=True).first())
    if pk:
        commit_in_acme(lambda: services.delete_service(actor="tests", service=Service.objects.get(pk=pk)))


def test_secret_values_never_leave_vault(asgi_server: LiveServer, dashboard: httpx2.Client, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    base = asgi_server.url
    entered, refresh = unique_secret("entered"), unique_secret("refresh")
    add = "/t/acme/admin/services/service/add/"
    page = dashboard.get(add)
    form = {
        "csrfmiddlewaretoken": _csrf(page),
        "name": NAME,
        "service_type": "oauth2",
        "auth_type": "bearer",
        "base_url": "https://api.example.test",
        "metadata": "{}",
        "is_enabled": "on",
        "scopes": "",
        "rotation_policy": "on_demand",
        "rotation_interval_days": "30",
        "rotation_kind": "generated",
        "rotation_config": '{"length": 48}',
        "keep_versions": "5",
        "access_token": entered,
        "refresh_token": refresh,
        "client_id": "public-client",
    }
    created = dashboard.post(add, data=form, headers={"Referer": base + add})
    assert created.status_code == 302, created.text[:3000]
    with schema_context("tenant_acme"):
        service = Service.objects.get(name=NAME)
    change = f"/t/acme/admin/services/service/{service.pk}/change/"
    listing = "/t/acme/admin/services/service/"
    rotated = dashboard.post(
        listing,
        data={
            "csrfmiddlewaretoken": _csrf(dashboard.get(listing)),
            "action": "rotate_now",
            "_selected_action": str(service.pk),
        },
        headers={"Referer": base + listing},
        follow_redirects=True,
    )
    assert f"Rotated {NAME} to version 2." in rotated.text
    generated = vault.tenant_kv_read("tenant_acme", service.vault_path)[0]["access_token"]
    assert len(generated) == 48
    # A tool reads it (audited), committed like a live call.
    with schema_context("tenant_acme"):
        reader = session_for(User.objects.get(email="admin@acme.test"))
    assert commit_in_acme(lambda: read_credentials(reader, NAME))["credentials"]["access_token"] == generated
    values = (entered, refresh, generated)

    # 1. Admin HTML: change page, list, history, and the audit review pages.
    pages = [change, listing, f"{change.removesuffix('change/')}history/", "/t/acme/audit/"]
    for url in pages:
        response = dashboard.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        for value in values:
            assert value not in response.text, url
    assert "v2" in dashboard.get(change).text  # the history is there, without values

    # 2. Audit rows (every column, as text) of the tenant.
    with schema_context("tenant_acme"), connection.cursor() as cursor:
        for value in values:
            cursor.execute("SELECT count(*) FROM audit_auditevent a WHERE a::text LIKE %s", [f"%{value}%"])
            assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM audit_auditevent WHERE target_type = 'services.service' AND target_id = %s",
            [str(service.pk)],
        )
        assert cursor.fetchone()[0] >= 4  # created, secret_created, secret_rotated, read (and admin.*)

    # 3. A dump of the whole test database (all schemas).
    db = settings.DATABASES["default"]
    dump = subprocess.run(
        ["pg_dump", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], db["NAME"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert NAME in dump and service.vault_path in dump  # the dump does hold the service
    for value in values:
        assert value not in dump

    # 4. Logs: this process (every logger, DEBUG) and the server's.
    server_log = asgi_server.log.read_text(errors="replace")
    for value in values:
        assert value not in caplog.text
        assert value not in server_log
