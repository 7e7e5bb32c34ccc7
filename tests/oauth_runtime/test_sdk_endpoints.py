"""`sdk-policy` (GET) and `sdk-manifest` (PUT): the shapes the SDK parses, deny-by-default states, Basic auth
with the introspection credentials (every other caller refused alike), JSON errors, audit."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client as HttpClient
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from oauth import resource_servers as rs
from oauth.models import ResourceServerTool
from tests.oauth_runtime.conftest import MANIFEST, RS_URI, Registered, get_policy, put_manifest, raw_basic

pytestmark = pytest.mark.django_db


def _events(registered: Registered, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(registered.server.pk)).order_by("id"))


def test_policy_needs_setup_before_any_tool_is_known(registered: Registered) -> None:
    response = get_policy(registered)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["state"] == "needs_setup"
    assert body["policy_complete"] is False
    assert body["tool_policy"] == []
    assert body["scopes_supported"] == ["read", "write"]
    assert body["generation"] == 1
    assert "manifest" in body["reason"]


def test_manifest_lists_tools_which_stay_denied_until_mapped(registered: Registered) -> None:
    response = put_manifest(registered)
    assert response.status_code == 200, response.content
    assert response.json()["added"] == ["read_notes", "write_note"]
    tools = {tool.name: tool for tool in registered.server.tools.all()}
    assert tools["write_note"].suggested_scopes == ["write"]
    assert tools["read_notes"].input_schema == {"type": "object"}
    body = get_policy(registered).json()
    assert body["state"] == "needs_setup" and body["policy_complete"] is False
    assert body["tool_policy"] == [
        {"name": "read_notes", "is_public": False, "required_scopes": []},
        {"name": "write_note", "is_public": False, "required_scopes": []},
    ]
    assert body["generation"] == 2
    [event] = _events(registered, "oauth.resource_server_manifest_published")
    assert event.actor_id == registered.client_id
    assert event.data["added"] == ["read_notes", "write_note"]


def test_mapping_one_tool_makes_the_policy_ready_and_leaves_the_other_denied(registered: Registered, scopes) -> None:  # type: ignore[no-untyped-def]
    put_manifest(registered)
    tool = registered.server.tools.get(name="read_notes")
    rs.map_tool(actor="tests", tool=tool, is_public=False, required_scopes=[scopes["read"], scopes["admin"]])
    body = get_policy(registered).json()
    assert body["state"] == "ready" and body["policy_complete"] is True
    assert body["tool_policy"] == [
        {"name": "read_notes", "is_public": False, "required_scopes": ["admin", "read"]},
        {"name": "write_note", "is_public": False, "required_scopes": []},
    ]
    assert "write_note" in body["reason"]
    assert body["scopes_supported"] == ["admin", "read", "write"]
    assert body["generation"] == 3
    [event] = _events(registered, "oauth.resource_server_policy_changed")
    assert event.data["tool"] == "read_notes" and event.data["generation"] == 3


def test_public_tool_and_a_tool_cannot_be_both(registered: Registered, scopes) -> None:  # type: ignore[no-untyped-def]
    put_manifest(registered)
    tool = registered.server.tools.get(name="write_note")
    rs.map_tool(actor="tests", tool=tool, is_public=True, required_scopes=[])
    assert get_policy(registered).json()["tool_policy"][1] == {
        "name": "write_note",
        "is_public": True,
        "required_scopes": [],
    }
    with pytest.raises(rs.ValidationError):
        rs.map_tool(actor="tests", tool=tool, is_public=True, required_scopes=[scopes["write"]])


def test_a_new_manifest_keeps_mappings_and_flags_missing_tools(registered: Registered, scopes) -> None:  # type: ignore[no-untyped-def]
    put_manifest(registered)
    rs.map_tool(
        actor="tests",
        tool=registered.server.tools.get(name="read_notes"),
        is_public=False,
        required_scopes=[scopes["read"]],
    )
    response = put_manifest(registered, {"tools": [MANIFEST["tools"][0], {"name": "search"}]})  # read_notes unchanged
    assert response.json()["added"] == ["search"]
    assert response.json()["removed"] == ["write_note"]
    assert not ResourceServerTool.objects.get(name="write_note").in_manifest
    policy = {tool["name"]: tool for tool in get_policy(registered).json()["tool_policy"]}
    assert policy["read_notes"]["required_scopes"] == ["read"]
    assert policy["search"] == {"name": "search", "is_public": False, "required_scopes": []}


def test_renaming_a_scope_bumps_the_generation(registered: Registered, scopes) -> None:  # type: ignore[no-untyped-def]
    before = get_policy(registered).json()["generation"]
    scopes["write"].name = "notes-write"
    scopes["write"].save()
    body = get_policy(registered).json()
    assert body["generation"] == before + 1
    assert body["scopes_supported"] == ["notes-write", "read"]


def test_disabled_server_denies_all_and_refuses_manifests(registered: Registered) -> None:
    put_manifest(registered)
    registered.server.is_active = False
    registered.server.save()
    body = get_policy(registered).json()
    assert body["state"] == "disabled" and body["policy_complete"] is False
    response = put_manifest(registered)
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


# --- Who may call ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "wrong-secret", "bearer", "machine-client", "other-server", "garbage"])
def test_only_the_servers_own_credentials_are_accepted(registered: Registered, clients, who) -> None:  # type: ignore[no-untyped-def]
    other, other_secret = rs.create_resource_server(actor="tests", name="Other", resource_uri="https://other.test/mcp")
    headers = {
        "anonymous": {},
        "wrong-secret": raw_basic(registered.client_id, registered.secret + "x"),
        "bearer": {"HTTP_AUTHORIZATION": f"Bearer {registered.secret}"},
        "machine-client": raw_basic(clients.machine.client_id, clients.machine_secret),
        "other-server": raw_basic(other.client.client_id, other_secret),
        "garbage": {"HTTP_AUTHORIZATION": "Basic !!!notbase64"},
    }[who]
    for response in (get_policy(registered, headers), put_manifest(registered, headers=headers)):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response["WWW-Authenticate"].startswith("Basic ")
        assert registered.secret not in response.content.decode()
    assert not registered.server.tools.exists()
    denied = _events(registered, "oauth.resource_server_auth_failed")
    assert len(denied) == 2 and {event.outcome for event in denied} == {"deny"}


def test_unknown_and_malformed_ids_answer_like_wrong_credentials(registered: Registered) -> None:
    auth = raw_basic(registered.client_id, registered.secret)
    for rs_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = HttpClient().get(f"/t/acme/oauth/authsec/resource-servers/{rs_id}/sdk-policy", **auth)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_credentials_of_acme_do_not_work_at_globex(registered: Registered, globex) -> None:  # type: ignore[no-untyped-def]
    response = get_policy(registered, tenant="globex")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_rejected_client_can_no_longer_fetch(registered: Registered) -> None:
    client = registered.server.client
    client.status = client.Status.REJECTED
    client.save()
    assert get_policy(registered).status_code == 401


# --- Transport details ------------------------------------------------------------------------------------------------


def test_wrong_methods_and_trailing_slashes(registered: Registered) -> None:
    auth = raw_basic(registered.client_id, registered.secret)
    post = HttpClient().post(registered.url("sdk-policy"), {}, **auth)
    assert post.status_code == 405 and post["Allow"] == "GET" and post.json()["error"] == "invalid_request"
    get = HttpClient().get(registered.url("sdk-manifest"), **auth)
    assert get.status_code == 405 and get["Allow"] == "PUT"
    slash = HttpClient().get(registered.url("sdk-policy") + "/", **auth)
    assert slash.status_code == 404  # never a redirect: clients do not follow them
    assert not slash.has_header("Location")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "JSON document"),
        (b'{"tool": []}', '"tools" list'),
        (b'{"tools": [{"name": ""}]}', "'name'"),
        (b'{"tools": [{"name": "a"}, {"name": "a"}]}', "listed twice"),
        (b'{"tools": [{"name": "a", "input_schema": "x"}]}', "'input_schema' must be an object"),
        (b'{"tools": [{"name": "a", "suggested_scopes": "read"}]}', "suggested_scopes"),
        (b'{"tools": [{"name": "a", "description": 5}]}', "'description' must be a string"),
        (b"\xff\xfe", "JSON document"),
    ],
)
def test_bad_manifests_get_a_clear_json_error(registered: Registered, raw: bytes, message: str) -> None:
    response = put_manifest(registered, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert message in response.json()["error_description"]
    assert not registered.server.tools.exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"tools": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested deeper than"),
        (
            b'{"tools": [{"name": "a", "input_schema": ' + b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}]}",
            "nested deeper",
        ),
        (b'{"pad": {' + b", ".join(b'"k%d": 1' % n for n in range(10_001)) + b'}, "tools": []}', "more than"),
    ],
    ids=["depth", "depth-in-input-schema", "keys"],
)
def test_hostile_manifests_get_a_json_400_not_a_500(registered: Registered, raw: bytes, message: str) -> None:
    """Issue 18 finding 6: the manifest goes through the project's JSON parser and its limits."""
    response = put_manifest(registered, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert message in response.json()["error_description"]
    assert not registered.server.tools.exists()


def test_oversized_manifest_is_refused_with_json(registered: Registered, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = put_manifest(registered, {"tools": [{"name": f"tool_{i}", "description": "x" * 50} for i in range(40)]})
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


def test_resource_server_of_globex_is_invisible_in_acme(registered: Registered, globex) -> None:  # type: ignore[no-untyped-def]
    with schema_context(globex.schema_name):
        server, secret = rs.create_resource_server(actor="tests", name="G", resource_uri=RS_URI)
    response = HttpClient().get(
        f"/t/acme/oauth/authsec/resource-servers/{server.pk}/sdk-policy", **raw_basic(server.client.client_id, secret)
    )
    assert response.status_code == 401
