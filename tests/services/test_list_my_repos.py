"""`list_my_repos` end to end: real uvicorn, real `mcp` client, real OpenBao, and a local stand-in for GitHub's
`GET /user/repos` (the one fake: it speaks GitHub's JSON and checks the bearer token like GitHub does)."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from services import services
from services.models import Service
from tests.support.audit import wait_for_event
from tests.support.live import LiveServer
from tests.support.mcp import Committed, call, commit_in_acme, text, url
from tests.support.services import unique_secret

pytestmark = pytest.mark.django_db
NAME = "GitHub API Integration"


@dataclass
class FakeGitHub:
    url: str
    token: str
    requests: list[str] = field(default_factory=list)


def _repos(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": 1000 + i,
            "node_id": f"R_kgDO{i:04d}",
            "name": f"repo-{i}",
            "full_name": f"acme-corp/repo-{i}",
            "private": i % 2 == 0,
            "owner": {"login": "acme-corp", "id": 1, "type": "Organization"},
            "html_url": f"https://github.com/acme-corp/repo-{i}",
            "description": None,
            "fork": False,
            "stargazers_count": 100 - i,
            "watchers_count": 100 - i,
            "language": "Python",
            "default_branch": "main",
        }
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(url="", token=unique_secret("ghp"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            header = self.headers.get("Authorization", "")
            fake.requests.append(self.path)
            if self.path.split("?")[0] != "/user/repos":
                return self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
            if not hmac.compare_digest(header.encode(), f"Bearer {fake.token}".encode()):
                return self._json(
                    401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
                )
            return self._json(200, _repos(12))

        def _json(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def github_service(committed: Committed, github: FakeGitHub, django_db_blocker) -> Iterator[int]:  # noqa: F811  # type: ignore[no-untyped-def]
    """The seed's service in acme, committed (the live server reads it), pointing at the stand-in."""
    with django_db_blocker.unblock():
        service = commit_in_acme(
            lambda: services.create_service(
                actor="tests",
                name=NAME,
                base_url=github.url,
                scopes=["read"],
                credentials={"access_token": github.token},
            )
        )
    yield service.pk
    with django_db_blocker.unblock():
        commit_in_acme(lambda: services.delete_service(actor="tests", service=Service.objects.get(pk=service.pk)))


def test_alice_lists_her_repositories(
    asgi_server: LiveServer,
    github: FakeGitHub,
    github_service: int,
    tokens: Callable[[str], str],  # noqa: F811
) -> None:
    before = len(github.requests)
    result = call(url(asgi_server), tokens("alice@acme.test"), "list_my_repos")
    assert not result.is_error, asgi_server.log.read_text(errors="replace")[-3000:]
    lines = [f"- acme-corp/repo-{i} ({100 - i} ⭐)" for i in range(10)]
    assert text(result) == "Your GitHub Repositories:\n" + "\n".join(lines)
    assert github.requests[before:] == ["/user/repos"]
    event = wait_for_event(action="service.read", target_id=str(github_service), actor_label="alice@acme.test")
    assert event.outcome == "allow"
    assert event.data["tool"] == "list_my_repos" and event.data["application"] == "demo"
    assert github.token not in json.dumps(event.data)


def test_carol_without_read_is_denied_and_audited(
    asgi_server: LiveServer,
    github: FakeGitHub,
    github_service: int,
    tokens: Callable[[str], str],  # noqa: F811
) -> None:
    before = len(github.requests)
    started = time.time()
    result = call(url(asgi_server), tokens("carol@acme.test"), "list_my_repos")
    assert isinstance(result, MCPError) and result.message == "Unknown tool: list_my_repos"
    # The audit log is shared with other live-server tests (carol's earlier denials): only this call's event.
    event = wait_for_event(
        action="mcp.tool_call",
        tool="list_my_repos",
        actor_label="carol@acme.test",
        outcome="deny",
        created_at__gte=datetime.fromtimestamp(started - 1, tz=UTC),
    )
    assert event.data["reason"].startswith("denied")
    assert github.requests[before:] == []  # GitHub was never called, the token never left Vault


def test_a_service_requirement_stricter_than_the_tool_denies_with_a_clear_message(
    asgi_server: LiveServer,
    github: FakeGitHub,
    github_service: int,
    tokens: Callable[[str], str],  # noqa: F811
) -> None:
    def restrict(roles: list[str], scopes: list[str]) -> None:
        Service.objects.filter(pk=github_service).update(roles=roles, scopes=scopes)

    commit_in_acme(lambda: restrict(["admin"], []))
    try:
        result = call(url(asgi_server), tokens("bob@acme.test"), "list_my_repos")  # bob: scope read, not admin
    finally:
        commit_in_acme(lambda: restrict([], ["read"]))
    assert result.is_error and text(result) == f'You are not permitted to use the service "{NAME}".'
    event = wait_for_event(action="service.read", target_id=str(github_service), actor_label="bob@acme.test")
    assert event.outcome == "deny" and event.data["tool"] == "list_my_repos"


def test_a_token_github_rejects_is_reported_without_the_token(
    asgi_server: LiveServer,
    github: FakeGitHub,
    github_service: int,
    tokens: Callable[[str], str],  # noqa: F811
) -> None:
    wrong = unique_secret("ghp-wrong")
    good = github.token

    def replace(value: str) -> None:
        services.replace_secret(
            actor="tests", service=Service.objects.get(pk=github_service), credentials={"access_token": value}
        )

    commit_in_acme(lambda: replace(wrong))
    try:
        result = call(url(asgi_server), tokens("alice@acme.test"), "list_my_repos")
    finally:
        commit_in_acme(lambda: replace(good))
    assert result.is_error
    assert text(result) == "GitHub refused the stored token (HTTP 401); ask an admin to replace it."
    # The new version is used at once (the SDK's cache is keyed by version), and back again.
    assert not call(url(asgi_server), tokens("alice@acme.test"), "list_my_repos").is_error


def test_the_token_never_reaches_the_server_log(
    asgi_server: LiveServer, github: FakeGitHub, github_service: int
) -> None:
    assert github.token not in asgi_server.log.read_text(errors="replace")
