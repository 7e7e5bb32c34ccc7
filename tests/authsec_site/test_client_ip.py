"""`authsec_site.lib.client_ip.client_address`: forwarding headers count only from TRUSTED_PROXIES, walked from
the right; the MCP endpoint's ASGI scope gets the same answer as a Django request."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from authsec_site.lib.client_ip import client_address, parse_networks, scope_ip
from authsec_site.middleware import RequestContextMiddleware

TRUSTED = ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # untrusted peer: its header is ignored
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # a spoofed hop on the left is never read
        ("10.0.0.5", "1.2.3.4, 198.51.100.1, 10.0.0.6", "198.51.100.1"),  # two trusted proxies
        ("10.0.0.5", "10.0.0.7, 10.0.0.6", "10.0.0.7"),  # everything trusted: the farthest hop
        ("10.0.0.5", "", "10.0.0.5"),  # a trusted peer without the header is the client
        ("10.0.0.5", "1.2.3.4, garbage", "10.0.0.5"),  # an unparsable hop ends the walk at its writer
        ("10.0.0.5", "198.51.100.1:4711", "198.51.100.1"),
        ("10.0.0.5", "[2001:db9::1]:4711", "2001:db9::1"),
        ("2001:db8::5", "::ffff:198.51.100.1", "198.51.100.1"),
    ],
)
def test_x_forwarded_for_is_walked_from_the_right(peer: str, header: str, expected: str) -> None:
    assert client_address(peer, [header] if header else [], trusted=TRUSTED, header="X-Forwarded-For") == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.5", ["198.51.100.1"], trusted=[], header="X-Forwarded-For") == "10.0.0.5"


def test_forwarded_header_rfc_7239() -> None:
    value = 'for=1.2.3.4;proto=http, for="[2001:db9::1]:80";by=10.0.0.6, for=10.0.0.6'
    assert client_address("10.0.0.5", [value], trusted=TRUSTED, header="Forwarded") == "2001:db9::1"
    assert client_address("10.0.0.5", ["for=unknown"], trusted=TRUSTED, header="Forwarded") == "10.0.0.5"


def test_several_header_lines_are_one_list() -> None:
    lines = ["1.2.3.4", "198.51.100.1"]
    assert client_address("10.0.0.5", lines, trusted=TRUSTED, header="X-Forwarded-For") == "198.51.100.1"


def test_bad_trusted_proxies_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        parse_networks(["10.0.0.300"])


def test_asgi_scope_reads_the_socket_peer_and_the_header_lines(settings) -> None:  # type: ignore[no-untyped-def]
    scope = {"client": ("10.0.0.5", 4711), "headers": [(b"x-forwarded-for", b"1.2.3.4, 198.51.100.1")]}
    settings.TRUSTED_PROXIES = []
    assert scope_ip(scope) == "10.0.0.5"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert scope_ip(scope) == "198.51.100.1"
    assert scope_ip({"headers": []}) is None


@pytest.mark.parametrize(
    ("peer", "secure"),
    [("10.1.2.3", True), ("203.0.113.9", False), ("127.0.0.1", False), ("::ffff:10.1.2.3", True), ("", False)],
)
def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(settings, peer: str, secure: bool) -> None:  # type: ignore[no-untyped-def]
    """A client talking to the server directly cannot claim https (secure cookies, CSRF's https rules, redirects)."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    seen: dict[str, bool] = {}

    def view(request):  # type: ignore[no-untyped-def]
        seen["secure"] = request.is_secure()
        return HttpResponse()

    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO="https")
    RequestContextMiddleware(view)(request)
    assert seen["secure"] is secure
