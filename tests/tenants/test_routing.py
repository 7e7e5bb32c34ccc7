"""Subfolder routing: /t/<slug>/ reaches that tenant; unknown and inactive tenants are a 404 page."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import get_resolver, reverse
from django_tenants.utils import schema_context

from tenants.middleware import ROUTING_VERSION_KEY
from tenants.models import Tenant
from tenants.services import set_tenant_active

pytestmark = pytest.mark.django_db


def test_tenant_admin_login_page_names_the_tenant(acme: Tenant) -> None:
    response = Client().get("/t/acme/admin/login/")
    assert response.status_code == 200
    assert "Acme Corp" in response.content.decode()


def test_unknown_tenant_is_a_404_page() -> None:
    response = Client().get("/t/nosuchtenant/admin/login/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_inactive_tenant_is_a_404_like_an_unknown_one(acme: Tenant) -> None:
    assert Client().get("/t/acme/admin/login/").status_code == 200  # this process now keeps acme's routing
    set_tenant_active(actor="tests", tenant=acme, is_active=False)
    response = Client().get("/t/acme/admin/login/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_a_change_made_by_another_process_is_seen_once_the_routing_version_moves(acme: Tenant) -> None:
    assert Client().get("/t/acme/admin/login/").status_code == 200
    # Another process deactivates acme: this one is not told, its copy still routes...
    Tenant.objects.filter(pk=acme.pk).update(is_active=False)
    assert Client().get("/t/acme/admin/login/").status_code == 200
    # ...until that process's commit moves the routing version token, as `routing_changed` does after commit.
    with schema_context("public"):
        cache.set(ROUTING_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    assert Client().get("/t/acme/admin/login/").status_code == 404


def test_a_tenant_keeps_its_url_resolver_across_requests(acme: Tenant, globex: Tenant) -> None:
    """django-tenants built a new URLConf per request and cleared Django's URL caches, so every request rebuilt the
    whole resolver (≈ 0.1 s for an admin page). Now each tenant's URLConf and resolver are built once per process,
    a public request in between does not drop them, and each tenant's URLs keep their own prefix."""
    first = Client().get("/t/acme/admin/login/")
    resolver = get_resolver(first.wsgi_request.urlconf)
    assert resolver.reverse_dict  # built by the first request
    assert Client().get("/admin/login/").status_code == 200  # a public-schema request in between
    assert Client().get("/t/globex/admin/login/").status_code == 200
    again = Client().get("/t/acme/admin/login/")
    assert again.wsgi_request.urlconf is first.wsgi_request.urlconf
    assert get_resolver(again.wsgi_request.urlconf) is resolver
    assert reverse("admin:index", urlconf=again.wsgi_request.urlconf) == "/t/acme/admin/"
    globex_page = Client().get("/t/globex/admin/login/")
    assert reverse("admin:index", urlconf=globex_page.wsgi_request.urlconf) == "/t/globex/admin/"
    assert 'action="/t/globex/admin/login/' in globex_page.content.decode()


def test_public_tenant_is_not_reachable_as_a_subfolder() -> None:
    assert Client().get("/t/public/admin/login/").status_code == 404


def test_platform_admin_is_outside_tenants() -> None:
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert "platform" in response.content.decode()


def test_every_response_carries_a_request_id() -> None:
    response = Client().get("/t/acme/admin/login/", HTTP_X_REQUEST_ID="trace-12345678")
    assert response["X-Request-ID"] == "trace-12345678"
    assert len(Client().get("/").headers["X-Request-ID"]) == 32


def test_malformed_request_id_is_replaced() -> None:
    response = Client().get("/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
