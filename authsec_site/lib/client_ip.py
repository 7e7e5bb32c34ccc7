"""The client address of a request, the one used by every per-IP throttle and every audit ``ip`` field.

Forwarding headers are trusted only when the TCP peer is one of ``settings.TRUSTED_PROXIES``; then the
chain in ``settings.FORWARDED_HEADER`` (``X-Forwarded-For``, or RFC 7239 ``Forwarded``) is walked from the
right, skipping trusted proxies, and the first other address is the client. Anything a client writes to the
left of that is never read, so a spoofed hop gains nothing. Uvicorn must not rewrite the peer itself
(``--no-proxy-headers``): the ASGI scope's ``client`` has to be the real socket peer.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.I)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES`` entries (addresses or CIDRs) as networks; a bad entry raises ValueError naming it."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {value!r} is not an IP address or CIDR network") from None
    return tuple(networks)


@functools.cache
def _trusted(values: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(values)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One hop as written by a proxy: ``1.2.3.4``, ``1.2.3.4:567``, ``[::1]:567``, ``::1``; else None."""
    value = value.strip().strip('"').strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _hops(values: Sequence[str], header: str) -> list[str]:
    """The addresses of the forwarding chain, leftmost first (several header lines are one list, in order)."""
    joined = ",".join(values)
    if header == "forwarded":
        return [match.group(1) for element in joined.split(",") if (match := _FORWARDED_FOR.search(element))]
    return [hop for hop in joined.split(",") if hop.strip()]


def client_address(
    peer: str | None, headers: Sequence[str], *, trusted: Sequence[str] | None = None, header: str | None = None
) -> str | None:
    """The client: the peer itself unless it is a trusted proxy; then the rightmost untrusted hop of `headers`
    (the values of the forwarding header). A hop that is not an address ends the walk at the proxy that wrote it."""
    networks = _trusted(tuple(settings.TRUSTED_PROXIES if trusted is None else trusted))
    if not networks:
        return peer or None  # no proxy: the socket peer, as the server gave it
    current = _address(peer or "")
    if current is None:
        return peer or None
    for hop in reversed(_hops(headers, (header or settings.FORWARDED_HEADER).lower())):
        if not any(current in network for network in networks):
            break
        address = _address(hop)
        if address is None:
            break
        current = address
    return str(current)


def is_trusted_proxy(peer: str | None) -> bool:
    """Is the socket peer one of ``settings.TRUSTED_PROXIES``?"""
    address = _address(peer or "")
    return address is not None and any(address in network for network in _trusted(tuple(settings.TRUSTED_PROXIES)))


def drop_untrusted_forwarded_proto(request: HttpRequest) -> None:
    """``X-Forwarded-Proto`` (Django's ``SECURE_PROXY_SSL_HEADER``) counts only when a trusted proxy sent the
    request: from anyone else it is removed before Django can read it, so a direct client cannot claim https."""
    if "HTTP_X_FORWARDED_PROTO" in request.META and not is_trusted_proxy(request.META.get("REMOTE_ADDR")):
        del request.META["HTTP_X_FORWARDED_PROTO"]


def request_ip(request: HttpRequest) -> str | None:
    """`client_address` of a Django request (kept on the request: asked by throttles, forms and audit)."""
    known = getattr(request, "_authsec_client_ip", False)
    if known is not False:
        return known
    header = settings.FORWARDED_HEADER
    value = request.headers.get(header) if settings.TRUSTED_PROXIES else None
    ip = client_address(request.META.get("REMOTE_ADDR"), [value] if value else [])
    request._authsec_client_ip = ip  # type: ignore[attr-defined]
    return ip


def scope_ip(scope: Any) -> str | None:
    """`client_address` of an ASGI scope (the MCP endpoint): the socket peer and the raw header lines."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not settings.TRUSTED_PROXIES:
        return client_address(peer, [])
    name = settings.FORWARDED_HEADER.lower().encode()
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]
    return client_address(peer, values)
