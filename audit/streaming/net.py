"""What every transport shares: `DeliveryError`, the guarded destination addresses, and TLS trust.

Sink destinations are typed by tenant admins, so they go through the same SSRF guard as every server-side
request (`authsec_site.lib.outbound`): public addresses only, plus loopback in development and the private
networks the operator lists in `AUDIT_SINK_ALLOWED_NETWORKS`.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from collections.abc import Sequence

from django.conf import settings

from audit.models import AuditSink
from authsec_site.lib import outbound


class DeliveryError(Exception):
    """A batch the receiver did not accept. The message is shown on the dashboard: it names the destination and
    what went wrong, never a secret or the events."""


@functools.cache
def _networks(values: tuple[str, ...]) -> tuple[outbound.Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise DeliveryError(f"AUDIT_SINK_ALLOWED_NETWORKS: {value!r} is not an address or CIDR network") from None
    return tuple(networks)


def allowed_networks() -> tuple[outbound.Network, ...]:
    return _networks(tuple(settings.AUDIT_SINK_ALLOWED_NETWORKS))


def addresses(host: str, port: int) -> Sequence[str]:
    """The addresses of a sink's host, refused unless each one may be reached (resolved once)."""
    try:
        return outbound.checked_addresses(
            host,
            port,
            resolver=outbound.system_resolver,
            allow_loopback=bool(settings.OUTBOUND_ALLOW_LOOPBACK),
            extra_networks=allowed_networks(),
        )
    except outbound.FetchError as exc:
        raise DeliveryError(exc.message) from None


def tls_context(ca_certificate: str) -> ssl.SSLContext:
    """Certificate and host name checked; trusting only `ca_certificate` (PEM) when given, else the system's CAs."""
    try:
        context = ssl.create_default_context(cadata=ca_certificate or None)
    except (ssl.SSLError, ValueError) as exc:
        raise DeliveryError(f"The sink's CA certificate is not usable PEM ({type(exc).__name__})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def post(sink: AuditSink, payload: bytes, headers: dict[str, str], *, what: str) -> outbound.Response:
    """One guarded HTTPS POST of `payload` to the sink's URL; raise `DeliveryError` unless 2xx (webhook and OTLP)."""
    try:
        response = outbound.fetch(
            sink.url,
            method="POST",
            content=payload,
            headers=headers,
            timeout=float(settings.AUDIT_SINK_TIMEOUT),
            schemes=("https",),
            verify=tls_context(sink.ca_certificate),
            max_bytes=64 * 1024,
            extra_networks=allowed_networks(),
        )
    except outbound.FetchError as exc:
        raise DeliveryError(f"{what}: {exc.message}") from None
    if not 200 <= response.status < 300:
        raise DeliveryError(f"{what}: the receiver answered HTTP {response.status}")
    return response
