"""The management API accepts OAuth bearer tokens of staff users that carry the `admin` scope."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from accounts.models import User
from tests.support.oauth import REDIRECT, get_code, login, pkce

pytestmark = pytest.mark.django_db


def _token_for(email: str, clients, scope: str, resource: str | None = None) -> str:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code, _ = get_code(login(email), clients.public, challenge, scope=scope, resource=resource)
    response = HttpClient().post(
        "/t/acme/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": clients.public.client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_staff_token_with_admin_scope_reads_the_api(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    User.objects.filter(email="dave@acme.test").update(is_staff=True, is_superuser=True)  # dave holds scope admin
    token = _token_for("dave@acme.test", clients, "openid admin")
    response = HttpClient().get("/t/acme/api/roles/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert "superuser" in {role["name"] for role in response.json()["results"]}


def test_token_without_admin_scope_is_refused(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    User.objects.filter(email="alice@acme.test").update(is_staff=True, is_superuser=True)
    token = _token_for("alice@acme.test", clients, "openid read")
    response = HttpClient().get("/t/acme/api/roles/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_token_for_an_mcp_resource_is_not_valid_for_the_api(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    from tests.support.oauth import mcp_url

    User.objects.filter(email="dave@acme.test").update(is_staff=True, is_superuser=True)
    token = _token_for("dave@acme.test", clients, "openid admin", resource=mcp_url())
    response = HttpClient().get("/t/acme/api/roles/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code in (401, 403)


def test_garbage_bearer_is_refused(demo_users) -> None:  # type: ignore[no-untyped-def]
    response = HttpClient().get("/t/acme/api/roles/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code in (401, 403)
