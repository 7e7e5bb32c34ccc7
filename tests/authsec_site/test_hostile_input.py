"""Issue 18 finding 6, the hostile-input matrix: every JSON and form endpoint served by Django (the MCP endpoint's
matrix, over real HTTP, is tests/mcp_endpoint/test_hostile_json.py).

Each case is one request with a hostile body — nested 10,000 deep, over the size limit, over the key or field
limit, the wrong content type, invalid UTF-8, a non-object, a lone surrogate — and asserts the exact status,
the protocol's own error code, JSON (never an HTML page or a stack trace) and that nothing was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client as HttpClient
from django_tenants.utils import schema_context
from oauth2_provider.models import AccessToken

from audit.models import AuditEvent
from oauth.models import Client
from rbac.models import Role
from tenants.models import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
DEPTH = 10_000


def deep_array() -> bytes:
    return b"[" * DEPTH + b"]" * DEPTH


def deep_inside(key: str) -> bytes:
    """A JSON object whose `key` holds objects nested 10,000 deep."""
    return b'{"%s": ' % key.encode() + b'{"a": ' * DEPTH + b"1" + b"}" * DEPTH + b"}"


def too_big(key: str) -> bytes:
    return json.dumps({key: "x" * (settings.JSON_MAX_BYTES + 1)}).encode()


def too_many_keys() -> bytes:
    return json.dumps({f"k{n}": n for n in range(settings.JSON_MAX_KEYS + 1)}).encode()


def too_many_fields() -> bytes:
    return "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)).encode()


def too_big_form() -> bytes:
    return b"grant_type=client_credentials&pad=" + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)


def _post(path: str, body: bytes, content_type: str, client: HttpClient | None = None, **extra: Any) -> HttpResponse:
    return (client or HttpClient()).generic("POST", path, body, content_type=content_type, **extra)


def _json_error(response: HttpResponse) -> dict[str, Any]:
    """The body of an error answer, which must be JSON (no page, no traceback)."""
    assert response["Content-Type"].split(";")[0] in (JSON, "application/problem+json"), response.content[:300]
    assert b"Traceback" not in response.content and b"<html" not in response.content.lower()
    return response.json()


def _count(tenant: Tenant, model: type[Model]) -> int:
    with schema_context(tenant.schema_name):
        return model.objects.count()


# --- OAuth dynamic registration (RFC 7591): invalid_client_metadata, nothing registered ---------------------------

REGISTER = "/t/acme/oauth/register"
REGISTER_CASES = {
    "depth-whole-body": (deep_array, JSON, 400, "invalid_client_metadata"),
    "depth-inside-metadata": (lambda: deep_inside("client_name"), JSON, 400, "invalid_client_metadata"),
    "size": (lambda: too_big("client_name"), JSON, 413, "invalid_request"),
    "keys": (too_many_keys, JSON, 400, "invalid_client_metadata"),
    "wrong-content-type": (
        lambda: json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x"}).encode(),
        "text/plain",
        400,
        "invalid_client_metadata",
    ),
    "form-body": (lambda: b"client_name=x&redirect_uris=http://127.0.0.1:9/cb", FORM, 400, "invalid_client_metadata"),
    "invalid-utf8": (lambda: b'{"client_name": "\xff\xfe", "redirect_uris": []}', JSON, 400, "invalid_client_metadata"),
    "lone-surrogate": (
        lambda: b'{"client_name": "\\ud800", "redirect_uris": ["http://127.0.0.1:9/cb"]}',
        JSON,
        400,
        "invalid_client_metadata",
    ),
    "not-an-object": (lambda: b'["http://127.0.0.1:9/cb"]', JSON, 400, "invalid_client_metadata"),
    "syntax": (lambda: b'{"client_name": ', JSON, 400, "invalid_client_metadata"),
}


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("case", REGISTER_CASES)
def test_register_refuses_hostile_json(case: str, debug: bool, acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = debug
    body, content_type, status, error = REGISTER_CASES[case]
    before = _count(acme, Client)
    response = _post(REGISTER, body(), content_type)
    assert response.status_code == status, response.content[:300]
    assert _json_error(response)["error"] == error
    assert _count(acme, Client) == before


# --- Token, revocation, introspection (form endpoints): OAuth JSON errors, no token written -----------------------

FORM_ENDPOINTS = ["/t/acme/oauth/token", "/t/acme/oauth/revoke", "/t/acme/oauth/introspect"]
FORM_CASES = {
    "size": (too_big_form, FORM, 413, "invalid_request"),
    "fields": (too_many_fields, FORM, 400, "invalid_request"),
}


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("case", FORM_CASES)
@pytest.mark.parametrize("path", FORM_ENDPOINTS)
def test_form_endpoints_answer_django_limits_as_oauth_json(  # type: ignore[no-untyped-def]
    path: str, case: str, debug: bool, acme: Tenant, settings
) -> None:
    settings.DEBUG = debug
    body, content_type, status, error = FORM_CASES[case]
    before = _count(acme, AccessToken)
    response = _post(path, body(), content_type)
    assert response.status_code == status, response.content[:300]
    body_json = _json_error(response)
    assert body_json["error"] == error
    assert "error_description" in body_json
    assert _count(acme, AccessToken) == before


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_token_endpoint_refuses_a_json_body_and_invalid_utf8(debug: bool, acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = debug
    before = _count(acme, AccessToken)
    as_json = _post("/t/acme/oauth/token", b'{"grant_type": "client_credentials"}', JSON)
    assert as_json.status_code == 400
    assert _json_error(as_json)["error"] == "unsupported_grant_type"  # no form field: no grant type was sent
    bad_utf8 = _post("/t/acme/oauth/token", b"grant_type=client_credentials&client_id=%FF%FE", FORM)
    assert bad_utf8.status_code == 401
    assert _json_error(bad_utf8)["error"] == "invalid_client"
    assert _count(acme, AccessToken) == before


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/t/acme/oauth/token", 405, "invalid_request"),
        ("PUT", "/t/acme/oauth/revoke", 405, "invalid_request"),
        ("DELETE", "/t/acme/oauth/userinfo", 405, "invalid_request"),
        ("POST", "/t/acme/oauth/jwks", 405, "invalid_request"),
        ("POST", "/t/acme/oauth/.well-known/openid-configuration", 405, "invalid_request"),
        ("GET", "/t/acme/oauth/no-such-endpoint", 404, "not_found"),
        ("GET", "/t/nosuchtenant/oauth/token", 404, "not_found"),
    ],
)
def test_oauth_endpoints_answer_django_errors_as_json(  # type: ignore[no-untyped-def]
    method: str, path: str, status: int, error: str, debug: bool, acme: Tenant, settings
) -> None:
    settings.DEBUG = debug
    response = HttpClient().generic(method, path)
    assert response.status_code == status
    assert _json_error(response)["error"] == error
    if status == 405:
        assert response["Allow"]


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("case", FORM_CASES)
def test_userinfo_answers_django_limits_as_oauth_json(case: str, debug: bool, acme: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = debug
    body, content_type, status, error = FORM_CASES[case]
    response = _post("/t/acme/oauth/userinfo", body(), content_type, HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == status, response.content[:300]
    assert _json_error(response)["error"] == error


def test_an_unexpected_error_is_oauth_json_without_a_traceback(acme: Tenant, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An exception inside an OAuth view (here a JWKS that cannot be built) is a JSON 500, DEBUG on."""
    settings.DEBUG = True

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("secret detail that must not be shown")

    monkeypatch.setattr("oauth.views.published_keys", broken)
    response = HttpClient(raise_request_exception=False).get("/t/acme/oauth/jwks")
    assert response.status_code == 500
    assert _json_error(response)["error"] == "server_error"
    assert b"secret detail" not in response.content


# --- SDK-manager endpoints: {"error", "message"}, nothing audited ----------------------------------------------------

SDKMGR = ["/sdkmgr/mcp-auth/tools/list", "/sdkmgr/mcp-auth/protect-tool"]
SDK_CASES: dict[str, tuple[Callable[[], bytes], str, int]] = {
    "depth-whole-body": (deep_array, JSON, 400),
    "depth-inside": (lambda: deep_inside("tool_name"), JSON, 400),
    "size": (lambda: too_big("tool_name"), JSON, 413),
    "keys": (too_many_keys, JSON, 400),
    "form-body": (lambda: b"client_id=x&tool_name=y", FORM, 400),
    "invalid-utf8": (lambda: b'{"client_id": "\xff"}', JSON, 400),
    "not-an-object": (lambda: b"[1, 2]", JSON, 400),
}


@pytest.mark.parametrize("case", SDK_CASES)
@pytest.mark.parametrize("path", SDKMGR)
def test_sdkmgr_refuses_hostile_json(path: str, case: str, acme: Tenant) -> None:
    body, content_type, status = SDK_CASES[case]
    before = _count(acme, AuditEvent)
    response = _post(path, body(), content_type)
    assert response.status_code == status, response.content[:300]
    answer = _json_error(response)
    assert answer["error"] == "invalid_request"
    if path.endswith("protect-tool"):
        assert answer["allowed"] is False
    assert _count(acme, AuditEvent) == before


# --- Management API (DRF): {"detail": …}, no role created -----------------------------------------------------------

API_CASES: dict[str, tuple[Callable[[], bytes], str, int]] = {
    "depth-whole-body": (deep_array, JSON, 400),
    "depth-inside": (lambda: deep_inside("description"), JSON, 400),
    "size": (lambda: too_big("description"), JSON, 400),
    "keys": (too_many_keys, JSON, 400),
    "wrong-content-type": (lambda: b'{"name": "reader"}', "text/plain", 415),
    "invalid-utf8": (lambda: b'{"name": "\xff\xfe"}', JSON, 400),
    "lone-surrogate": (lambda: b'{"name": "\\udc00"}', JSON, 400),
}


@pytest.mark.parametrize("case", API_CASES)
def test_management_api_refuses_hostile_json(case: str, admin: HttpClient, acme: Tenant) -> None:
    body, content_type, status = API_CASES[case]
    before = _count(acme, Role)
    response = _post("/t/acme/api/roles/", body(), content_type, admin)
    assert response.status_code == status, response.content[:300]
    assert _json_error(response)["detail"]
    assert _count(acme, Role) == before


def test_management_api_refuses_a_non_object_body(admin: HttpClient, acme: Tenant) -> None:
    before = _count(acme, Role)
    response = _post("/t/acme/api/roles/", b'["reader"]', JSON, admin)
    assert response.status_code == 400
    assert _json_error(response) == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    assert _count(acme, Role) == before


# --- The sign-in form (a browser page: Django's 400 page, no sign-in, nothing counted) -----------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [(too_many_fields, 400), (too_big_form, 400), (lambda: b"username=%FF%FE@acme.test&password=%FF", 200)],
    ids=["fields", "size", "invalid-utf8"],
)
def test_login_form_refuses_hostile_forms_without_signing_in(  # type: ignore[no-untyped-def]
    body: Callable[[], bytes], status: int, acme: Tenant
) -> None:
    with schema_context(acme.schema_name):  # live-server tests commit events of their own
        since = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    browser = HttpClient()
    response = _post("/t/acme/accounts/login/", body(), FORM, browser)
    assert response.status_code == status
    assert b"Traceback" not in response.content
    assert "_auth_user_id" not in browser.session
    with schema_context(acme.schema_name):
        written = AuditEvent.objects.filter(id__gt=since, action__in=["auth.login_succeeded", "auth.lockout"])
        assert not written.exists()
