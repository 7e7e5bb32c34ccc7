"""One granted scope everywhere: the token response, the stored token, the JWT's `scope` claim and introspection
say the same, for a code exchange and a refresh; `admin` only for tenant staff (and RBAC holders of it), and the
management API refuses a token without it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.test import Client as HttpClient
from oauth2_provider.models import get_access_token_model

from accounts.models import User
from tests.support.oauth import (
    PASSWORD,
    basic_auth,
    bearer,
    decode,
    exchange,
    get_code,
    introspect,
    login,
    make_resource_server,
    pkce,
    token_request,
)

pytestmark = pytest.mark.django_db

ASKED = "openid email admin read offline_access"


def _scope_everywhere(response: Any, rs: Any) -> dict[str, str]:
    """The scope of one token response as each place tells it."""
    assert response.status_code == 200, response.content
    body = response.json()
    access = body["access_token"]
    stored = get_access_token_model().objects.get(token_checksum=hashlib.sha256(access.encode()).hexdigest())
    claims = decode(access, HttpClient().get("/t/acme/oauth/jwks").json())
    introspected = introspect(access, rs.client.client_id, rs.secret).json()
    return {
        "response": body["scope"],
        "stored": stored.scope,
        "jwt": claims["scope"],
        "introspection": introspected["scope"],
    }


def _everywhere(scope: str) -> dict[str, str]:
    return dict.fromkeys(("response", "stored", "jwt", "introspection"), scope)


def _code_flow(email: str, clients: Any, scope: str = ASKED) -> Any:
    verifier, challenge = pkce()
    code, _ = get_code(login(email), clients.public, challenge, scope=scope, resource=None)
    return exchange(clients.public, code, verifier)


def _refresh(clients: Any, refresh_token: str) -> Any:
    return token_request(grant_type="refresh_token", refresh_token=refresh_token, client_id=clients.public.client_id)


@pytest.fixture
def tenant_admin(demo_users: dict[str, object]) -> User:
    """acme's admin (a superuser created with the tenant), signing in with the test password."""
    admin = User.objects.get(email="admin@acme.test")
    admin.set_password(PASSWORD)
    admin.save()
    return admin


def test_tenant_admin_gets_admin_and_every_place_agrees(tenant_admin, clients) -> None:  # type: ignore[no-untyped-def]
    rs = make_resource_server()
    response = _code_flow("admin@acme.test", clients)
    # admin@acme.test holds no RBAC role (so no `read`), but is tenant staff (so `admin`).
    expected = "openid email admin offline_access"
    assert _scope_everywhere(response, rs) == _everywhere(expected)
    api = HttpClient().get("/t/acme/api/roles/", **bearer(response.json()["access_token"]))
    assert api.status_code == 200, api.content

    refreshed = _refresh(clients, response.json()["refresh_token"])
    assert _scope_everywhere(refreshed, rs) == _everywhere(expected)


def test_non_admin_asking_for_admin_does_not_get_it(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    rs = make_resource_server()
    response = _code_flow("bob@acme.test", clients)
    expected = "openid email read offline_access"  # bob (analyst) holds `read`; he is not staff
    assert _scope_everywhere(response, rs) == _everywhere(expected)
    api = HttpClient().get("/t/acme/api/roles/", **bearer(response.json()["access_token"]))
    assert api.status_code == 403
    assert api.json()["detail"] == "Bearer tokens for the management API need the 'admin' scope."

    refreshed = _refresh(clients, response.json()["refresh_token"])
    assert _scope_everywhere(refreshed, rs) == _everywhere(expected)


def test_refresh_asking_for_admin_again_does_not_widen_the_grant(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    first = _code_flow("bob@acme.test", clients).json()
    response = token_request(
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=clients.public.client_id,
        scope="openid admin",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"  # RFC 6749 §6: never more than the original grant


def test_consent_page_lists_only_the_scopes_the_user_can_get(demo_users, clients, tenant_admin) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    from tests.support.oauth import authorize_params

    _verifier, challenge = pkce()
    params = urlencode(authorize_params(clients.public, challenge, scope=ASKED, resource=None))
    bob_page = login("bob@acme.test").get(f"/t/acme/oauth/authorize?{params}").content.decode()
    admin_page = login("admin@acme.test").get(f"/t/acme/oauth/authorize?{params}").content.decode()
    assert 'name="scope" value="openid email read offline_access"' in bob_page
    assert 'name="scope" value="openid email admin offline_access"' in admin_page


def test_a_posted_admin_scope_is_dropped_from_the_code(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # The consent form is the user's browser: a scope added to it is narrowed when the code is saved.
    from oauth2_provider.models import get_grant_model

    verifier, challenge = pkce()
    code, _ = get_code(login("bob@acme.test"), clients.public, challenge, scope="openid admin", resource=None)
    assert get_grant_model().objects.get(code=code).scope == "openid"
    assert exchange(clients.public, code, verifier).json()["scope"] == "openid"


def test_rbac_holder_of_admin_gets_it_but_the_api_still_wants_staff(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    # dave's `superuser` role gives him the RBAC scope `admin` (MCP tools may require it); he is not staff.
    rs = make_resource_server()
    response = _code_flow("dave@acme.test", clients, scope="openid admin")
    assert _scope_everywhere(response, rs) == _everywhere("openid admin")
    api = HttpClient().get("/t/acme/api/roles/", **bearer(response.json()["access_token"]))
    assert api.status_code == 403
    assert api.json()["detail"] == "The management API is for staff of this tenant."


def test_staff_losing_the_flag_loses_admin_at_introspection(tenant_admin, clients) -> None:  # type: ignore[no-untyped-def]
    rs = make_resource_server()
    access = _code_flow("admin@acme.test", clients, scope="openid admin").json()["access_token"]
    User.objects.filter(pk=tenant_admin.pk).update(is_staff=False, is_superuser=False)
    assert introspect(access, rs.client.client_id, rs.secret).json()["scope"] == "openid"
    assert HttpClient().get("/t/acme/api/roles/", **bearer(access)).status_code == 403


def test_client_credentials_never_get_admin(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    rs = make_resource_server()
    machine = basic_auth(clients.machine.client_id, clients.machine_secret)
    response = token_request(grant_type="client_credentials", scope="read admin", headers=machine)
    assert _scope_everywhere(response, rs) == _everywhere("read")
