"""The Connect-a-client endpoint check (`rbac.connect.check_endpoint`) against a stand-in for this deployment: a
local HTTP server playing the public URL. It must follow only the URLs it expects — never one an answer names."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from rbac.connect import check_endpoint
from rbac.models import Application
from tests.factories import ApplicationFactory

pytestmark = [pytest.mark.django_db]


class Answers:
    """What the stand-in answers, and every path it was asked for."""

    def __init__(self) -> None:
        self.challenge = ""
        self.post_status = 401
        self.asked: list[str] = []


def _handler(answers: Answers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answers.asked.append(f"POST {self.path}")
            if answers.post_status == 404:  # what the real endpoint answers for a disabled application
                self._answer(404, {"error": "not_found"})
            else:
                self._answer(401, {"error": "invalid_token"}, {"WWW-Authenticate": answers.challenge})

        def do_GET(self) -> None:  # noqa: N802
            answers.asked.append(f"GET {self.path}")
            self._answer(404, {"error": "not_found"})

    return Handler


@pytest.fixture
def stand_in() -> Iterator[tuple[str, Answers]]:
    answers = Answers()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(answers))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


def test_a_resource_metadata_pointing_elsewhere_is_not_followed(in_acme, stand_in) -> None:  # type: ignore[no-untyped-def]
    base, answers = stand_in
    answers.challenge = f'Bearer resource_metadata="{base}/elsewhere/secret-metadata"'
    app = ApplicationFactory(slug="proxy-check", auth_mode=Application.AuthMode.BEARER)
    with override_settings(AUTHSEC_PUBLIC_URL=base, OUTBOUND_ALLOW_LOOPBACK=True):
        steps = check_endpoint("acme", app)
    assert [step.ok for step in steps] == [True, False, False, False]
    assert steps[0].detail == "401, as bearer mode requires"
    assert steps[1].detail.startswith(f"resource_metadata is {base}/elsewhere/secret-metadata, expected ")
    assert answers.asked == ["POST /t/acme/mcp/proxy-check", "POST /t/acme/mcp/proxy-check"]  # no GET at all


def test_an_unreachable_endpoint_is_red_with_the_reason(in_acme) -> None:  # type: ignore[no-untyped-def]
    app = ApplicationFactory(slug="nowhere")
    with override_settings(AUTHSEC_PUBLIC_URL="http://127.0.0.1:9", OUTBOUND_ALLOW_LOOPBACK=False):
        steps = check_endpoint("acme", app)
    assert not any(step.ok for step in steps)
    assert "non-public address" in steps[0].detail


def test_a_disabled_application_is_red_with_the_reason(in_acme, stand_in) -> None:  # type: ignore[no-untyped-def]
    base, answers = stand_in
    answers.post_status = 404
    app = ApplicationFactory(slug="switched-off", is_active=False)
    with override_settings(AUTHSEC_PUBLIC_URL=base, OUTBOUND_ALLOW_LOOPBACK=True):
        steps = check_endpoint("acme", app)
    assert [step.ok for step in steps] == [False] * 4
    assert (
        steps[0].detail
        == steps[1].detail
        == ("The application is disabled: its endpoint answers 404. Activate it first.")
    )
    assert steps[2].detail.startswith("skipped") and steps[3].detail.startswith("skipped")
