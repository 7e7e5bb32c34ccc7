"""Clients held for approval (issue 19 point 3): their user is told why before signing in, the token endpoint
says the same, the dashboard home counts them and approves in one click, and the approved client then works."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient

from audit.models import AuditEvent
from oauth.models import Client, ProviderSettings
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.oauth import (
    PASSWORD,
    REDIRECT,
    authorize_params,
    basic_auth,
    exchange,
    get_code,
    login,
    pkce,
    token_request,
)

pytestmark = pytest.mark.django_db
WAITING = "MCP Inspector is waiting for approval by an administrator of Acme Corp."
REJECTED = "MCP Inspector was rejected by an administrator of Acme Corp and cannot sign anyone in."


def register(**metadata: Any) -> dict[str, Any]:
    """An MCP client's first connection to a tenant in the default `approval` mode."""
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": "approval"})
    body = {
        "client_name": "MCP Inspector",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        **metadata,
    }
    response = HttpClient().post("/t/acme/oauth/register", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["authsec_status"] == "pending"
    # Live-server tests commit their own registrations: this test's client is the only pending one (rolled back).
    Client.objects.filter(status=Client.Status.PENDING).exclude(client_id=response.json()["client_id"]).update(
        status=Client.Status.REJECTED
    )
    return response.json()


def admin_browser(email: str = "admin@acme.test", password: str = ADMIN_PASSWORD, tenant: str = "acme") -> HttpClient:
    browser = HttpClient(enforce_csrf_checks=True)
    page = browser.get(f"/t/{tenant}/admin/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = browser.post(
        f"/t/{tenant}/admin/login/", {"username": email, "password": password, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, f"login of {email} failed"
    return browser


def csrf_token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_pending_client_gets_a_clear_page_before_sign_in(demo_users) -> None:  # type: ignore[no-untyped-def]
    client = Client.objects.get(client_id=register()["client_id"])
    _verifier, challenge = pkce()
    response = HttpClient().get("/t/acme/oauth/authorize?" + urlencode(authorize_params(client, challenge)))
    assert response.status_code == 403
    assert not response.has_header("Location")  # neither to the login page nor back to the untrusted client
    page = response.content.decode()
    assert f'<p id="client-refusal">{WAITING}</p>' in page
    assert "invalid_client_id" not in page and "Invalid client_id" not in page
    assert response["Cache-Control"].startswith("max-age=0")


def test_rejected_client_gets_its_own_page(demo_users) -> None:  # type: ignore[no-untyped-def]
    client = Client.objects.get(client_id=register()["client_id"])
    Client.objects.filter(pk=client.pk).update(status=Client.Status.REJECTED)
    _verifier, challenge = pkce()
    response = login("alice@acme.test").get("/t/acme/oauth/authorize?" + urlencode(authorize_params(client, challenge)))
    assert response.status_code == 403
    assert f'<p id="client-refusal">{REJECTED}</p>' in response.content.decode()


def test_token_endpoint_tells_a_pending_public_client_why(demo_users) -> None:  # type: ignore[no-untyped-def]
    client_id = register()["client_id"]
    response = token_request(
        grant_type="authorization_code", code="any", redirect_uri=REDIRECT, client_id=client_id, code_verifier="x" * 43
    )
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "invalid_client", "error_description": WAITING}
    Client.objects.filter(client_id=client_id).update(status=Client.Status.REJECTED)
    refused = token_request(grant_type="refresh_token", refresh_token="any", client_id=client_id)
    assert refused.json() == {"error": "invalid_client", "error_description": REJECTED}


def test_token_endpoint_description_keeps_to_the_rfc_charset(demo_users) -> None:  # type: ignore[no-untyped-def]
    client_id = register(client_name='Outil "Démo"')["client_id"]
    response = token_request(grant_type="refresh_token", refresh_token="any", client_id=client_id)
    assert response.json()["error_description"] == (
        "Outil ?D?mo? is waiting for approval by an administrator of Acme Corp."
    )


def test_token_endpoint_tells_a_confidential_client_only_with_its_secret(demo_users) -> None:  # type: ignore[no-untyped-def]
    registered = register(grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_basic")
    right = basic_auth(registered["client_id"], registered["client_secret"])
    response = token_request(grant_type="client_credentials", headers=right)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": WAITING}
    in_body = token_request(
        grant_type="client_credentials", client_id=registered["client_id"], client_secret=registered["client_secret"]
    )
    assert in_body.json()["error_description"] == WAITING
    wrong = token_request(grant_type="client_credentials", headers=basic_auth(registered["client_id"], "not-it"))
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid_client"}  # nothing about the client without its secret


def test_dashboard_home_counts_pending_clients_and_approves_in_one_click(demo_users) -> None:  # type: ignore[no-untyped-def]
    client = Client.objects.get(client_id=register()["client_id"])
    admin = admin_browser()
    home = admin.get("/t/acme/admin/")
    page = home.content.decode()
    assert "1 client registration waiting for approval" in page
    assert "/t/acme/admin/oauth/client/?status__exact=pending" in page
    listing = admin.get("/t/acme/admin/oauth/client/?status__exact=pending").content.decode()
    assert "MCP Inspector" in listing

    approve_url = f"/t/acme/admin/oauth/client/{client.pk}/approve/"
    assert approve_url in page
    assert admin.get(approve_url).status_code == 405  # a link cannot approve
    assert admin.post(approve_url).status_code == 403  # nor a form without the CSRF token
    response = admin.post(approve_url, {"csrfmiddlewaretoken": csrf_token(page)})
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/admin/"
    client.refresh_from_db()
    assert client.status == Client.Status.ACTIVE
    event = AuditEvent.objects.get(action="oauth.client_approved", data__client_id=client.client_id)
    assert event.actor_label == "admin@acme.test"
    assert (event.data["before"], event.data["after"]) == ("pending", "active")
    assert "waiting for approval" not in admin.get("/t/acme/admin/").content.decode()

    # The same client now completes the code flow (no new registration, nothing cached from the refusal).
    verifier, challenge = pkce()
    code, _query = get_code(login("alice@acme.test"), client, challenge)
    tokens = exchange(client, code, verifier)
    assert tokens.status_code == 200, tokens.content
    assert tokens.json()["id_token"]


def test_one_click_reject_and_its_permission_matrix(demo_users, globex) -> None:  # type: ignore[no-untyped-def]
    client = Client.objects.get(client_id=register()["client_id"])
    reject_url = f"/t/acme/admin/oauth/client/{client.pk}/reject/"
    # Anonymous: the dashboard login, nothing changes.
    anonymous = HttpClient().post(reject_url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    # Staff who may only view clients: sees the count, gets no buttons, and a forged POST is refused.
    viewer = UserFactory(email="viewer@acme.test", is_staff=True)
    viewer.set_password(PASSWORD)
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_client", content_type__app_label="oauth"))
    browser = admin_browser("viewer@acme.test", PASSWORD)
    page = browser.get("/t/acme/admin/").content.decode()
    assert "1 client registration waiting for approval" in page
    assert reject_url not in page
    assert browser.post(reject_url, {"csrfmiddlewaretoken": csrf_token(page)}).status_code == 403
    # Another tenant's admin: signed in there, not here.
    other = admin_browser("admin@globex.test", ADMIN_PASSWORD, tenant="globex")
    assert other.post(reject_url).status_code in (302, 403)
    client.refresh_from_db()
    assert client.status == Client.Status.PENDING
    # The tenant's admin.
    admin = admin_browser()
    page = admin.get("/t/acme/admin/").content.decode()
    assert admin.post(reject_url, {"csrfmiddlewaretoken": csrf_token(page)}).status_code == 302
    client.refresh_from_db()
    assert client.status == Client.Status.REJECTED
    assert AuditEvent.objects.filter(action="oauth.client_rejected", data__client_id=client.client_id).count() == 1
