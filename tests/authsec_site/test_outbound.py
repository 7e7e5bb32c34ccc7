"""The guarded outbound fetch (`authsec_site.lib.outbound`): the SSRF matrix over addresses, redirects re-checked
at every hop, DNS rebinding, size and time limits. A real HTTP server on 127.0.0.1 stands in for a public host
in the positive controls, admitted only through the development setting (`OUTBOUND_ALLOW_LOOPBACK`), which the
matrix leaves off."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from authsec_site.lib import outbound
from authsec_site.lib.outbound import FetchError
from oauth.registration import TenantCIMDFetcher

# Each must be refused, literal in the URL or behind a name.
NON_PUBLIC = [
    pytest.param("127.0.0.1", id="loopback-v4"),
    pytest.param("127.1.2.3", id="loopback-v4-range"),
    pytest.param("::1", id="loopback-v6"),
    pytest.param("::ffff:127.0.0.1", id="v4-mapped-loopback"),
    pytest.param("::ffff:169.254.169.254", id="v4-mapped-metadata"),
    pytest.param("::ffff:10.0.0.1", id="v4-mapped-private"),
    pytest.param("::127.0.0.1", id="v4-compatible-loopback"),
    pytest.param("64:ff9b::a9fe:a9fe", id="nat64-metadata"),
    pytest.param("64:ff9b::808:808", id="nat64-public-v4"),
    pytest.param("64:ff9b:1::a00:1", id="nat64-local-use"),
    pytest.param("2002:a00:1::1", id="6to4-private"),
    pytest.param("2001:0:4136:e378:8000:63bf:f5ff:fffe", id="teredo-private-client"),
    pytest.param("0.0.0.0", id="unspecified-v4"),
    pytest.param("::", id="unspecified-v6"),
    pytest.param("10.0.0.1", id="rfc1918-10"),
    pytest.param("172.16.0.1", id="rfc1918-172"),
    pytest.param("192.168.1.1", id="rfc1918-192"),
    pytest.param("100.64.0.1", id="cgnat"),
    pytest.param("169.254.169.254", id="metadata-v4"),
    pytest.param("169.254.10.20", id="link-local-v4"),
    pytest.param("fe80::1", id="link-local-v6"),
    pytest.param("fd00:ec2::254", id="metadata-v6-aws"),
    pytest.param("fc00::1", id="unique-local-v6"),
    pytest.param("224.0.0.1", id="multicast-v4"),
    pytest.param("ff02::1", id="multicast-v6"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("240.0.0.1", id="reserved-v4"),
    pytest.param("198.18.0.1", id="benchmarking"),
]


def _literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _never(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolved {host}: a literal address needs no DNS")


def resolving_to(*answers: list[str]) -> Callable[[str, int], list[str]]:
    """A resolver that gives `answers[0]` on the first call, `answers[1]` on the second, … (and counts calls)."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.fixture
def loopback_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOW_LOOPBACK = False


@pytest.fixture
def loopback_on(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOW_LOOPBACK = True


class Local:
    """A real HTTP server on 127.0.0.1 (see `server`), and what it was asked."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, str]] = []  # (path, Host header)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[Local]:
    local: Local

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            local.requests.append((self.path, self.headers.get("Host", "")))
            if self.path == "/ok":
                self._send(200, json.dumps({"ok": True}).encode(), Content_Type="application/json")
            elif self.path.startswith("/to?"):
                self._send(302, Location=self.path.split("?", 1)[1])
            elif self.path.startswith("/hop/"):
                left = int(self.path.rsplit("/", 1)[1])
                self._send(302, Location="/ok" if left == 0 else f"/hop/{left - 1}")
            elif self.path == "/loop":
                self._send(302, Location="/loop")
            elif self.path == "/big":
                self._send(200, b"x" * 200_000, Content_Type="application/json")
            elif self.path == "/big-undeclared":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(50):
                    self.wfile.write(b"1000\r\n" + b"y" * 0x1000 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif self.path == "/slow":
                time.sleep(3)
                self._send(200, b"{}")
            elif self.path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "40")
                self.end_headers()
                for _ in range(40):  # one byte every 0.1 s: no single read times out, the whole takes 4 s
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self._send(404)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client hanging up on purpose (size and time limits) is expected here

    httpd = Server(("127.0.0.1", 0), Handler)
    local = Local(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield local
    httpd.shutdown()
    httpd.server_close()


# --- The address matrix ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_refuses_a_non_public_address_in_the_url(loopback_off: None, address: str) -> None:
    with pytest.raises(FetchError, match="non-public address") as caught:
        outbound.fetch(f"http://{_literal(address)}/x", resolver=_never)
    assert caught.value.reason == "blocked_address"


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_refuses_a_name_that_resolves_to_a_non_public_address(loopback_off: None, address: str) -> None:
    with pytest.raises(FetchError, match="non-public address") as caught:
        outbound.fetch("https://innocent.example/doc.json", resolver=resolving_to([address]))
    assert caught.value.reason == "blocked_address"


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_count_as_public(address: str) -> None:
    assert outbound.is_public_address(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:10.0.0.1", "0.0.0.0"])
def test_the_loopback_setting_admits_nothing_but_loopback(loopback_on: None, address: str) -> None:
    with pytest.raises(FetchError, match="non-public address"):
        outbound.fetch(f"http://{_literal(address)}/x", resolver=_never)


def test_extra_networks_admit_those_networks_and_nothing_else(loopback_off: None) -> None:
    """A caller's operator-allowed networks (the audit stream's AUDIT_SINK_ALLOWED_NETWORKS) widen the guard by
    exactly those networks."""
    import ipaddress

    siem = (ipaddress.ip_network("10.20.0.0/16"),)
    assert outbound.address_allowed("10.20.3.4", allow_loopback=False, extra_networks=siem)
    for address in ("10.21.0.1", "127.0.0.1", "169.254.169.254", "::ffff:10.20.3.4", "fd00::1"):
        assert not outbound.address_allowed(address, allow_loopback=False, extra_networks=siem), address
    with pytest.raises(FetchError, match=r"non-public address \(10\.21\.0\.1\)"):
        outbound.fetch("https://siem.example/x", resolver=resolving_to(["10.20.0.9", "10.21.0.1"]), extra_networks=siem)


def test_a_name_with_one_private_answer_among_public_ones_is_refused(loopback_off: None) -> None:
    with pytest.raises(FetchError, match=r"non-public address \(10\.0\.0\.7\)"):
        outbound.fetch("https://split.example/x", resolver=resolving_to(["93.184.216.34", "10.0.0.7"]))


def test_refuses_urls_with_credentials_and_other_schemes(loopback_on: None, server: Local) -> None:
    for url in (f"http://user:pw@127.0.0.1:{server.port}/ok", "file:///etc/passwd", "gopher://127.0.0.1/"):
        with pytest.raises(FetchError) as caught:
            outbound.fetch(url, resolver=_never)
        assert caught.value.reason == "bad_url"


# --- Positive control -------------------------------------------------------------------------------------------


def test_positive_control_fetches_through_the_development_setting(loopback_on: None, server: Local) -> None:
    response = outbound.fetch(server.url("/ok"))
    assert (response.status, response.json()) == (200, {"ok": True})


def test_loopback_is_refused_without_the_setting(loopback_off: None, server: Local) -> None:
    before = len(server.requests)
    with pytest.raises(FetchError, match="non-public address"):
        outbound.fetch(server.url("/ok"))
    assert len(server.requests) == before  # refused before any connection


# --- Redirects ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]/", "http://10.0.0.1:8080/"]
)
def test_a_redirect_to_a_private_address_is_refused(loopback_on: None, server: Local, target: str) -> None:
    with pytest.raises(FetchError, match="non-public address") as caught:
        outbound.fetch(server.url(f"/to?{target}"), max_redirects=3)
    assert caught.value.reason == "blocked_address"


def test_a_redirect_to_a_name_resolving_privately_is_refused(loopback_on: None, server: Local) -> None:
    resolver = resolving_to(["10.1.2.3"])
    with pytest.raises(FetchError, match=r"internal\.example resolves to a non-public address"):
        outbound.fetch(server.url("/to?http://internal.example/"), max_redirects=3, resolver=resolver)
    assert resolver.calls == ["internal.example"]  # type: ignore[attr-defined]


def test_redirects_are_followed_within_the_hop_limit(loopback_on: None, server: Local) -> None:
    assert outbound.fetch(server.url("/hop/2"), max_redirects=3).json() == {"ok": True}


def test_a_redirect_loop_stops_at_the_hop_limit(loopback_on: None, server: Local) -> None:
    with pytest.raises(FetchError) as caught:
        outbound.fetch(server.url("/loop"), max_redirects=3)
    assert caught.value.reason == "too_many_redirects"


def test_without_redirects_allowed_the_redirect_is_returned_unfollowed(loopback_on: None, server: Local) -> None:
    before = len(server.requests)
    response = outbound.fetch(server.url("/to?http://169.254.169.254/"))
    assert response.status == 302 and response.headers["location"] == "http://169.254.169.254/"
    assert len(server.requests) == before + 1


# --- DNS rebinding ----------------------------------------------------------------------------------------------


def test_resolves_once_and_connects_to_the_checked_address_with_the_original_host(
    loopback_on: None, server: Local
) -> None:
    # First answer allowed (loopback stands in for a public address here), every later answer private: the
    # connection goes to the address that was checked, and the name is never looked up again.
    resolver = resolving_to(["127.0.0.1"], ["10.0.0.1"], ["169.254.169.254"])
    response = outbound.fetch(server.url("/ok", host="rebind.example"), resolver=resolver)
    assert response.status == 200
    assert resolver.calls == ["rebind.example"]  # type: ignore[attr-defined]
    assert server.requests[-1] == ("/ok", f"rebind.example:{server.port}")  # Host keeps the name


def test_a_rebinding_name_is_refused_when_its_first_answer_is_private(loopback_off: None) -> None:
    resolver = resolving_to(["169.254.169.254"], ["93.184.216.34"])
    with pytest.raises(FetchError, match="non-public address"):
        outbound.fetch("https://rebind.example/x", resolver=resolver)
    assert resolver.calls == ["rebind.example"]  # type: ignore[attr-defined]


# --- Size and time -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big", "/big-undeclared"])
def test_an_answer_over_the_size_limit_is_refused(loopback_on: None, server: Local, path: str) -> None:
    with pytest.raises(FetchError) as caught:
        outbound.fetch(server.url(path), max_bytes=64 * 1024)
    assert caught.value.reason == "response_too_large"


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_a_slow_answer_hits_the_time_limit(loopback_on: None, server: Local, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        outbound.fetch(server.url(path), timeout=0.8)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 2.0


# --- The callers use it ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "fd00:ec2::254"])
def test_the_cimd_fetcher_refuses_names_resolving_privately(loopback_off: None, address: str) -> None:
    from oauth2_provider.cimd import CIMDError

    fetcher = TenantCIMDFetcher()
    fetcher.resolver = resolving_to([address])
    with pytest.raises(CIMDError, match="non-public address"):
        fetcher.fetch("https://client.example/metadata.json")
