"""The SDK's CIBA endpoints under the issuer (`sdkmgr.ciba`), request by request: client authentication, bad input,
the poll's CIBA errors (authorization_pending, slow_down, expired_token, access_denied), one token per approval,
respond with the user's bearer, TOTP sign-in with a real code, the MFA status look-ups, and other tenants refused.
The approval itself is the real `approvals.services.decide` (the approval page's service); the live test
(`test_ciba_live.py`) runs the published SDK and the page in Chromium."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client as HttpClient
from django.utils import timezone
from django_otp.oath import TOTP
from django_tenants.utils import schema_context

from accounts import services as account_services
from accounts.models import User
from approvals import services as approvals
from approvals.models import ApprovalRequest
from audit.models import AuditEvent
from oauth.introspection import _claims as verified_claims
from oauth.models import Client
from tests.factories import OAuthClientFactory, UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in

pytestmark = pytest.mark.django_db
WORKSPACE = "authsec/uflow/auth/workspace"


@dataclass
class CibaClient:
    client: Client
    secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client.client_id, self.secret)


def make_ciba_client(**fields: Any) -> CibaClient:
    secret = secrets.token_urlsafe(32)
    fields.setdefault("is_ciba_client", True)
    client = OAuthClientFactory(machine=True, name="Voice agent", client_secret=secret, **fields)
    return CibaClient(client, secret)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def post(
    path: str, body: Any, *, auth: tuple[str, str] | None = None, tenant: str = "acme", **headers: str
) -> HttpResponse:
    if auth is not None:
        headers.update(basic(*auth))
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return HttpClient(enforce_csrf_checks=True).post(
        f"/t/{tenant}/oauth/{path}", data=data, content_type="application/json", **headers
    )


def initiate(ciba: CibaClient, email: str = "alice@acme.test", **extra: Any) -> HttpResponse:
    body = {"client_id": ciba.client.client_id, "email": email, "binding_message": "Sign in to the voice agent"}
    return post(f"{WORKSPACE}/ciba/initiate", body | extra, auth=ciba.auth)


def poll(ciba: CibaClient, auth_req_id: str) -> HttpResponse:
    cache.delete(f"ciba:poll:{auth_req_id}")  # each poll in these tests comes after the interval
    return post(
        f"{WORKSPACE}/ciba/token", {"client_id": ciba.client.client_id, "auth_req_id": auth_req_id}, auth=ciba.auth
    )


def totp_code(key_hex: str, offset: int = 0) -> str:
    totp = TOTP(bytes.fromhex(key_hex))
    totp.time = time.time() + 30 * offset
    return f"{totp.token():06d}"


@pytest.fixture
def alice(in_acme) -> User:  # type: ignore[no-untyped-def]
    return UserFactory(email="alice@acme.test")


@pytest.fixture
def ciba(in_acme) -> CibaClient:  # type: ignore[no-untyped-def]
    return make_ciba_client()  # a new client id per test: the per-client rate limits never carry over


def _error(response: HttpResponse, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error and body["success"] is False and body["error_description"]
    return body


# --- Client authentication ---------------------------------------------------------------------------------------


def test_initiate_without_client_credentials_is_invalid_client(ciba: CibaClient, alice: User) -> None:
    response = post(f"{WORKSPACE}/ciba/initiate", {"client_id": ciba.client.client_id, "email": alice.email})
    body = _error(response, 401, "invalid_client")
    assert "base URL" in body["error_description"]
    assert response["WWW-Authenticate"].startswith("Basic")
    event = AuditEvent.objects.filter(action="oauth.ciba_client_auth_failed").latest("seq")
    assert event.outcome == "deny" and event.data["endpoint"] == "initiate"
    assert not ApprovalRequest.objects.exists()


def test_wrong_secret_and_unknown_client_get_the_same_answer(ciba: CibaClient, alice: User) -> None:
    wrong = post(f"{WORKSPACE}/ciba/initiate", {"email": alice.email}, auth=(ciba.client.client_id, "nope"))
    unknown = post(f"{WORKSPACE}/ciba/initiate", {"email": alice.email}, auth=("no-such-client", ciba.secret))
    assert _error(wrong, 401, "invalid_client") == _error(unknown, 401, "invalid_client")


def test_client_secret_in_the_body_authenticates_too(ciba: CibaClient, alice: User) -> None:
    body = {"client_id": ciba.client.client_id, "client_secret": ciba.secret, "email": alice.email}
    assert post(f"{WORKSPACE}/ciba/initiate", body).status_code == 200


def test_body_client_id_must_match_the_authenticated_client(ciba: CibaClient, alice: User) -> None:
    other = make_ciba_client()
    response = post(
        f"{WORKSPACE}/ciba/initiate", {"client_id": other.client.client_id, "email": alice.email}, auth=ciba.auth
    )
    _error(response, 401, "invalid_client")


def test_a_client_not_enabled_for_ciba_is_unauthorized_client(alice: User) -> None:
    plain = make_ciba_client(is_ciba_client=False)
    body = _error(initiate(plain), 400, "unauthorized_client")
    assert "CIBA" in body["error_description"]


def test_a_public_client_cannot_use_ciba(alice: User) -> None:
    public = OAuthClientFactory(name="Public", is_ciba_client=True)
    _error(initiate(CibaClient(public, "")), 401, "invalid_client")


def test_a_pending_client_cannot_use_ciba(alice: User) -> None:
    held = make_ciba_client(status=Client.Status.PENDING)
    _error(initiate(held), 401, "invalid_client")


def test_another_tenants_client_is_refused(ciba: CibaClient, alice: User) -> None:
    with schema_context("tenant_globex"):
        UserFactory(email="alice@acme.test")  # the same email exists in globex: still not acme's client
        theirs = make_ciba_client()
    _error(initiate(theirs), 401, "invalid_client")
    # Our client at globex's issuer is unknown there too.
    response = post(
        f"{WORKSPACE}/ciba/initiate",
        {"client_id": ciba.client.client_id, "email": "alice@acme.test"},
        auth=ciba.auth,
        tenant="globex",
    )
    _error(response, 401, "invalid_client")


def test_another_tenants_request_cannot_be_polled(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba).json()["auth_req_id"]
    with schema_context("tenant_globex"):
        theirs = make_ciba_client()
        response = post(
            f"{WORKSPACE}/ciba/token",
            {"client_id": theirs.client.client_id, "auth_req_id": auth_req_id},
            auth=theirs.auth,
            tenant="globex",
        )
    _error(response, 400, "invalid_grant")


# --- Bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"not json", 400, "invalid_request"),
        (b"[1, 2]", 400, "invalid_request"),
        ({"binding_message": "hi"}, 400, "invalid_request"),  # no email
        ({"email": ["alice@acme.test"]}, 400, "invalid_request"),
        ({"email": "nobody@acme.test"}, 400, "unknown_user_id"),
        ({"email": "alice@acme.test", "binding_message": "x" * 300}, 400, "invalid_request"),
        ({"email": "alice@acme.test", "requested_expiry": 100000}, 400, "invalid_request"),
        ({"email": "alice@acme.test", "requested_expiry": "soon"}, 400, "invalid_request"),
    ],
)
def test_bad_initiate_input_gets_a_clear_error(
    ciba: CibaClient, alice: User, body: Any, status: int, error: str
) -> None:
    _error(post(f"{WORKSPACE}/ciba/initiate", body, auth=ciba.auth), status, error)


def test_wrong_method_and_trailing_slash_are_json_errors(ciba: CibaClient) -> None:
    response = HttpClient().get(f"/t/acme/oauth/{WORKSPACE}/ciba/initiate")
    _error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"
    slash = post(f"{WORKSPACE}/ciba/initiate/", {"email": "a"}, auth=ciba.auth)
    assert slash.status_code == 404 and slash.json()["error"] == "not_found"


def test_unknown_auth_req_id_is_invalid_grant(ciba: CibaClient) -> None:
    for value in ("not-a-uuid", "2b0f7a4e-5a55-4d2c-9a59-000000000000"):
        _error(poll(ciba, value), 400, "invalid_grant")
    _error(post(f"{WORKSPACE}/ciba/token", {}, auth=ciba.auth), 400, "invalid_request")


def test_the_admin_flow_and_password_login_say_what_to_use(ciba: CibaClient) -> None:
    admin = post("authsec/uflow/auth/ciba/initiate", {"login_hint": "alice@acme.test"})
    assert "client_id" in _error(admin, 400, "invalid_request")["error_description"]
    _error(post("authsec/uflow/auth/totp/login", {"email": "a", "totp_code": "1"}), 400, "invalid_request")
    _error(post("authsec/uflow/user/login", {"email": "a", "password": "b"}), 400, "unsupported_grant_type")
    device = post(f"{WORKSPACE}/ciba/register-device", {"device_token": "t"})
    assert "approval page" in _error(device, 400, "invalid_request")["error_description"]


# --- Initiate and poll -------------------------------------------------------------------------------------------


def test_initiate_makes_a_self_approval_request_for_the_named_user(ciba: CibaClient, alice: User) -> None:
    response = initiate(ciba)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["expires_in"] == 300 and body["interval"] == 5
    assert body["approval_url"].endswith(f"/t/acme/approvals/{body['auth_req_id']}/")
    request = ApprovalRequest.objects.get(pk=body["auth_req_id"])
    assert request.kind == "ciba" and request.mode == "self" and request.caller == alice
    assert request.client_id == ciba.client.client_id and request.binding_message == "Sign in to the voice agent"
    event = AuditEvent.objects.filter(action="approval.requested").latest("seq")
    assert event.actor_id == ciba.client.client_id


def test_poll_is_pending_then_slow_down_when_too_fast(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba).json()["auth_req_id"]
    _error(poll(ciba, auth_req_id), 400, "authorization_pending")
    body = {"client_id": ciba.client.client_id, "auth_req_id": auth_req_id}
    _error(post(f"{WORKSPACE}/ciba/token", body, auth=ciba.auth), 400, "slow_down")


def test_an_approved_request_gives_one_token_of_the_issuer(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba).json()["auth_req_id"]
    approvals.decide(approvals.get_request(auth_req_id), alice, True)
    response = poll(ciba, auth_req_id)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid" and body["success"] is True
    claims = verified_claims(body["access_token"])
    assert claims["iss"] == "http://testserver/t/acme/oauth" or claims["iss"].endswith("/t/acme/oauth")
    assert claims["sub"] == str(alice.pk) and claims["client_id"] == ciba.client.client_id
    assert claims["amr"] == ["mfa"]
    id_token = verified_claims(body["id_token"])
    assert (id_token["aud"], id_token["sub"]) == (ciba.client.client_id, str(alice.pk))
    assert id_token["urn:openid:params:jwt:claim:auth_req_id"] == auth_req_id
    assert ApprovalRequest.objects.get(pk=auth_req_id).status == "used"
    issued = AuditEvent.objects.filter(action="oauth.ciba_token_issued").latest("seq")
    assert issued.data["grant"] == "ciba" and issued.data["auth_req_id"] == auth_req_id
    # The same auth_req_id never gives a second token.
    _error(poll(ciba, auth_req_id), 400, "invalid_grant")


def test_another_client_cannot_poll_the_request(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba).json()["auth_req_id"]
    approvals.decide(approvals.get_request(auth_req_id), alice, True)
    _error(poll(make_ciba_client(), auth_req_id), 400, "invalid_grant")
    assert ApprovalRequest.objects.get(pk=auth_req_id).status == "approved"


def test_a_denied_request_is_access_denied(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba).json()["auth_req_id"]
    approvals.decide(approvals.get_request(auth_req_id), alice, False)
    _error(poll(ciba, auth_req_id), 400, "access_denied")


def test_an_expired_request_is_expired_token(ciba: CibaClient, alice: User) -> None:
    auth_req_id = initiate(ciba, requested_expiry=30).json()["auth_req_id"]
    ApprovalRequest.objects.filter(pk=auth_req_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    _error(poll(ciba, auth_req_id), 400, "expired_token")
    approvals.expire_due()
    _error(poll(ciba, auth_req_id), 400, "expired_token")


def test_one_user_cannot_be_flooded_with_requests(ciba: CibaClient, alice: User) -> None:
    for _ in range(5):
        assert initiate(ciba).status_code == 200
    _error(initiate(ciba), 429, "slow_down")


# --- TOTP sign-in, respond, pending requests, MFA status ---------------------------------------------------------


@pytest.fixture
def alice_totp(alice: User) -> str:
    key = secrets.token_hex(20)
    account_services.enroll_totp(actor="tests", user=alice, key_hex=key, last_t=int(time.time() // 30) - 2)
    return key


def totp_login(ciba: CibaClient, code: str, email: str = "alice@acme.test") -> HttpResponse:
    body = {"client_id": ciba.client.client_id, "email": email, "totp_code": code}
    return post(f"{WORKSPACE}/totp/login", body, auth=ciba.auth)


def test_totp_login_with_a_real_code_gives_a_token_once(ciba: CibaClient, alice: User, alice_totp: str) -> None:
    code = totp_code(alice_totp)
    response = totp_login(ciba, code)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["token"] == body["access_token"]
    claims = verified_claims(body["access_token"])
    assert claims["sub"] == str(alice.pk) and claims["amr"] == ["otp"]
    _error(totp_login(ciba, code), 400, "invalid_grant")  # the same code again


def test_totp_login_refuses_wrong_codes_and_unknown_users_alike(ciba: CibaClient, alice_totp: str) -> None:
    wrong = _error(totp_login(ciba, "000000" if totp_code(alice_totp) != "000000" else "111111"), 400, "invalid_grant")
    unknown = _error(totp_login(ciba, totp_code(alice_totp), email="nobody@acme.test"), 400, "invalid_grant")
    assert wrong == unknown
    _error(totp_login(ciba, "12ab"), 400, "invalid_request")


def test_respond_denies_with_the_users_token_but_approves_only_after_a_fresh_factor(
    ciba: CibaClient, alice: User, alice_totp: str
) -> None:
    first = initiate(ciba).json()["auth_req_id"]
    second = initiate(ciba).json()["auth_req_id"]
    # A token of alice's that no second factor stands behind (an approved CIBA request's) can deny, not approve.
    approvals.decide(approvals.get_request(initiate(ciba).json()["auth_req_id"]), alice, True)
    plain = poll(ciba, str(ApprovalRequest.objects.filter(status="approved").get().pk)).json()["access_token"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {plain}"}
    refused = post(f"{WORKSPACE}/ciba/respond", {"auth_req_id": first, "approved": True}, **bearer)
    assert "approval" in _error(refused, 403, "second_factor_required")["error_description"]
    denied = post(f"{WORKSPACE}/ciba/respond", {"auth_req_id": first, "approved": False}, **bearer)
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    _error(poll(ciba, first), 400, "access_denied")
    # A token from TOTP sign-in (amr otp, just now) approves.
    fresh = totp_login(ciba, totp_code(alice_totp)).json()["access_token"]
    approved = post(
        f"{WORKSPACE}/ciba/respond",
        {"auth_req_id": second, "approved": True, "biometric_verified": True},
        HTTP_AUTHORIZATION=f"Bearer {fresh}",
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert poll(ciba, second).status_code == 200


def test_respond_refuses_other_users_and_missing_tokens(ciba: CibaClient, alice: User) -> None:
    bob = UserFactory(email="bob@acme.test")
    auth_req_id = initiate(ciba, email=bob.email).json()["auth_req_id"]
    approvals.decide(approvals.get_request(initiate(ciba).json()["auth_req_id"]), alice, True)
    token = poll(ciba, str(ApprovalRequest.objects.filter(status="approved").get().pk)).json()["access_token"]
    other = post(
        f"{WORKSPACE}/ciba/respond",
        {"auth_req_id": auth_req_id, "approved": False},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    _error(other, 403, "access_denied")
    _error(post(f"{WORKSPACE}/ciba/respond", {"auth_req_id": auth_req_id, "approved": False}), 401, "invalid_token")
    basic_only = post(f"{WORKSPACE}/ciba/respond", {"auth_req_id": auth_req_id, "approved": False}, auth=ciba.auth)
    assert "base URL" in _error(basic_only, 401, "invalid_token")["error_description"]
    listed = HttpClient().get(f"/t/acme/oauth/{WORKSPACE}/ciba/requests", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert listed["success"] is True and len(listed["requests"]) == 0  # alice has none pending; bob's is his


def test_mfa_status_lookups(ciba: CibaClient, alice: User, alice_totp: str) -> None:
    bob = UserFactory(email="bob@acme.test")
    body = {"email": alice.email, "client_id": ciba.client.client_id}
    by_client = post("authsec/webauthn/enduser/mfa/loginStatus", body, auth=ciba.auth)
    assert by_client.status_code == 200
    assert by_client.json() | {} == {
        "success": True,
        "email": "alice@acme.test",
        "workspace_id": "acme",
        "mfa_enabled": True,
        "mfa_required": True,
        "methods": ["totp"],
        "totp_enabled": True,
        "webauthn_enabled": False,
        "ciba_available": True,
    }
    for path in ("webauthn/mfa/loginStatus", "authsec/webauthn/mfa/loginStatus"):
        body = post(path, {"email": bob.email, "workspace_id": "acme"}, auth=ciba.auth).json()
        assert body["methods"] == [] and body["mfa_enabled"] is False
        _error(post(path, {"email": bob.email, "workspace_id": "globex"}, auth=ciba.auth), 400, "invalid_request")
        _error(post(path, {"email": bob.email, "workspace_id": "acme"}), 401, "invalid_client")


def test_an_admin_makes_a_ciba_client_in_the_dashboard(in_acme, alice: User) -> None:  # type: ignore[no-untyped-def]
    admin = log_in("acme", "admin@acme.test", ADMIN_PASSWORD)
    assert b"May ask users to approve sign-ins (CIBA)" in admin.get("/t/acme/admin/oauth/client/add/").content
    secret = secrets.token_urlsafe(32)
    form = {
        "client_id": f"voice-{secrets.token_hex(8)}",
        "name": "Voice agent",
        "client_type": Client.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Client.GRANT_CLIENT_CREDENTIALS,
        "redirect_uris": "",
        "post_logout_redirect_uris": "",
        "allowed_origins": "",
        "client_secret": secret,
        "hash_client_secret": "on",
        "algorithm": Client.RS256_ALGORITHM,
        "status": Client.Status.ACTIVE,
        "registration_source": "manual",
        "description": "",
        "is_ciba_client": "on",
    }
    response = admin.post("/t/acme/admin/oauth/client/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    client = Client.objects.get(client_id=form["client_id"])
    assert client.is_ciba_client
    created = AuditEvent.objects.filter(action="oauth.client_created", target_id=str(client.pk)).get()
    assert created.data["after"]["is_ciba_client"] is True
    assert initiate(CibaClient(client, secret)).status_code == 200
