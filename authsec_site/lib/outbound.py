"""The one guarded door for server-side HTTP requests to URLs a user, an admin or a remote party chose (SSRF).

`fetch` resolves the host once, refuses it unless every address it resolves to is public (no private,
loopback, link-local, metadata, CGNAT, multicast, reserved or unspecified address; IPv4 embedded in IPv6 —
mapped, 6to4, Teredo — judged as IPv4; NAT64 refused), then connects to the checked address itself while the
Host header, SNI and certificate check keep the original name, so a second DNS answer cannot rebind the
connection. Redirects are followed only when asked, at most `max_redirects` hops, each hop checked the same
way. The whole exchange has one deadline and the body a size cap.

`settings.OUTBOUND_ALLOW_LOOPBACK` (development and tests only; off by default) additionally admits loopback
addresses; every other non-public address stays refused, unless the caller names networks an operator allowed
for its purpose (`extra_networks`, e.g. the SIEM subnet of `AUDIT_SINK_ALLOWED_NETWORKS`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2
from django.conf import settings

logger = logging.getLogger(__name__)
Resolver = Callable[[str, int], Sequence[str]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_warned_loopback = False

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 512 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class FetchError(Exception):
    """A fetch that was refused or failed. `reason` is a short code for logs and audit; the message names the
    host or address but never a credential, header or body."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Response:
    """A complete, size-capped answer (`url` is the last hop's URL; header names are lower-case)."""

    status: int
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (each once, in the resolver's order)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"{host} could not be resolved", reason="unresolvable_host") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(value: str) -> bool:
    """True only for a globally routable unicast address (an IPv4 embedded in IPv6 is judged as IPv4)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in prefix for prefix in NAT64_PREFIXES):
            return False  # NAT64 reaches any IPv4 through a translator: refused outright
        if ip.teredo is not None:
            return all(is_public_address(str(part)) for part in ip.teredo)
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # deprecated IPv4-compatible ::a.b.c.d
        if embedded is not None:
            return is_public_address(str(embedded))
    return bool(ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local))


def address_allowed(value: str, *, allow_loopback: bool, extra_networks: Sequence[Network] = ()) -> bool:
    """`is_public_address`, plus loopback when the development setting says so, plus `extra_networks`."""
    if is_public_address(value):
        return True
    if extra_networks:
        try:
            ip = ipaddress.ip_address(value.split("%", 1)[0])
        except ValueError:
            return False
        if any(ip.version == network.version and ip in network for network in extra_networks):
            return True
    if not allow_loopback:
        return False
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def checked_addresses(
    host: str, port: int, *, resolver: Resolver, allow_loopback: bool, extra_networks: Sequence[Network] = ()
) -> list[str]:
    """Resolve `host` once and return its addresses, refusing the host if any of them is not allowed."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else list(resolver(host, port))
    if not addresses:
        raise FetchError(f"{host} did not resolve to any address", reason="unresolvable_host")
    for address in addresses:
        if not address_allowed(address, allow_loopback=allow_loopback, extra_networks=extra_networks):
            raise FetchError(f"{host} resolves to a non-public address ({address})", reason="blocked_address")
    return addresses


def _host_header(parts: Any) -> str:
    host = parts.hostname or ""
    name = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    return name if parts.port in (None, default) else f"{name}:{parts.port}"


def _warn_loopback_once(allow_loopback: bool) -> None:
    global _warned_loopback
    if allow_loopback and not settings.DEBUG and not _warned_loopback:
        _warned_loopback = True
        logger.warning("OUTBOUND_ALLOW_LOOPBACK is on with DEBUG off: server-side fetches may reach loopback")


def fetch(
    url: str,
    *,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    max_redirects: int = 0,
    schemes: Sequence[str] = ("https", "http"),
    resolver: Resolver | None = None,
    allow_loopback: bool | None = None,
    extra_networks: Sequence[Network] = (),
    verify: ssl.SSLContext | bool = True,
) -> Response:
    """One request to a URL chosen by someone else, with every SSRF guard (see the module docstring).

    `data` is sent form-encoded, `content` as raw bytes (give one). `verify`: an SSL context trusting a private
    CA, for a destination an admin configured with one. With ``max_redirects=0`` a redirect is returned as it
    is (not followed). Raises `FetchError`."""
    resolver = resolver or system_resolver
    if allow_loopback is None:
        allow_loopback = bool(getattr(settings, "OUTBOUND_ALLOW_LOOPBACK", False))
        _warn_loopback_once(allow_loopback)
    deadline = time.monotonic() + timeout
    hops = 0
    body_data = dict(data) if data is not None else None
    body_content = content
    while True:
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise FetchError(f"Only absolute {'/'.join(schemes)} URLs can be fetched", reason="bad_url")
        if parts.username or parts.password:
            raise FetchError("URLs with credentials are not fetched", reason="bad_url")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError("The URL has an invalid port", reason="bad_url") from None
        addresses = checked_addresses(
            parts.hostname, port, resolver=resolver, allow_loopback=allow_loopback, extra_networks=extra_networks
        )
        response = _exchange(
            parts,
            addresses,
            port,
            method,
            body_data,
            headers or {},
            max_bytes=max_bytes,
            deadline=deadline,
            content=body_content,
            verify=verify,
        )
        location = response.headers.get("location")
        if response.status not in REDIRECT_STATUSES or not location or max_redirects == 0:
            return response
        hops += 1
        if hops > max_redirects:
            raise FetchError(f"More than {max_redirects} redirects", reason="too_many_redirects")
        url = urljoin(url, location)
        if response.status == 303 or (response.status in (301, 302) and method != "GET"):
            method, body_data, body_content = "GET", None, None


def _exchange(
    parts: Any,
    addresses: list[str],
    port: int,
    method: str,
    data: dict[str, str] | None,
    headers: Mapping[str, str],
    *,
    max_bytes: int,
    deadline: float,
    content: bytes | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Response:
    """The request to the first checked address that answers (Host and SNI keep the name; body capped)."""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_headers = {"User-Agent": "AuthSec-Server", **headers, "Host": _host_header(parts)}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    last_error = ""
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        literal = f"[{address}]" if ":" in address else address
        target = f"{parts.scheme}://{literal}:{port}{path}"
        try:
            with (
                httpx2.Client(timeout=remaining, follow_redirects=False, trust_env=False, verify=verify) as http,
                http.stream(
                    method, target, data=data, content=content, headers=request_headers, extensions=extensions
                ) as answer,
            ):
                declared = answer.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"The answer of {parts.hostname} is too large", reason="response_too_large")
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(f"The answer of {parts.hostname} is too large", reason="response_too_large")
                    if time.monotonic() > deadline:
                        raise FetchError(f"{parts.hostname} answered too slowly", reason="timeout")
                return Response(
                    status=answer.status_code,
                    url=parts.geturl(),
                    body=bytes(body),
                    headers={key.lower(): value for key, value in answer.headers.items()},
                )
        except httpx2.TimeoutException:
            raise FetchError(f"{parts.hostname} answered too slowly", reason="timeout") from None
        except httpx2.ConnectError as exc:
            last_error = type(exc).__name__
        except httpx2.HTTPError as exc:
            raise FetchError(
                f"{parts.hostname} could not be reached ({type(exc).__name__})", reason="unreachable"
            ) from None
    if not last_error:
        raise FetchError(f"{parts.hostname} answered too slowly", reason="timeout")
    raise FetchError(f"{parts.hostname} could not be reached ({last_error})", reason="unreachable")
