"""The one redirect-URI policy of every client (DCR, CIMD, dashboard, seeds), after OAuth 2.1 §2.3.1, §8.4
and RFC 8252 §7: `https`; plain `http` only to the loopback interface; private-use (reverse-domain) schemes only
for native (public) clients; never `javascript:`, `data:`, `file:`, fragments, userinfo or dot segments.

`check_redirect_uri` is called when a client is saved (`Client.clean`, so the admin form, DCR and CIMD) and
again when a URI is used at /authorize (`Client.redirect_uri_allowed`), so a row written before this policy,
or behind its back, never receives a code at a URI the policy refuses.

Why not django-oauth-toolkit's checks alone: `ALLOWED_REDIRECT_URI_SCHEMES` is one list for every client and
host (with `http` in it, `http://evil.example/cb` passes; without it, RFC 8252 loopback redirects fail), it
does not know native from web clients, and its `AllowedURIValidator` accepts userinfo, IDN hosts, trailing
dots, dot segments and percent-encoded hosts. DOT's `COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME` only checks
that `http` is absent from that list. We keep `["https", "http"]` there and decide per URI here.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings

# RFC 8252 §7.3 names the IP literals; §8.3 allows "localhost" (not recommended, but common, e.g. MCP Inspector).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# Never a redirect target, whatever the client (script execution, inline content, local files).
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "filesystem"})
# Registered schemes of the web: not private-use, and not redirect schemes we support.
WEB_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "mailto", "tel", "sms", "ssh", "view-source", "intent"})
MAX_LENGTH = 2000

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# A DNS host name in ASCII (A-labels for IDN): labels of letters, digits and hyphens, no empty label.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(\d+|0x[0-9a-f]*)$")
_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)")


class RedirectURIError(ValueError):
    """A redirect URI the policy refuses; `message` says why, for the client or the admin (no secrets in it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_redirect_uri(uri: str, *, native: bool) -> None:
    """Raise RedirectURIError unless `uri` may be a redirect URI of a client (`native`: a public client).

    With OAUTH_ALLOW_INSECURE_REDIRECT_URIS (development only) plain http to any host passes too; every other
    rule stays."""
    if not isinstance(uri, str) or not uri:
        raise RedirectURIError("A redirect URI must be a non-empty string.")
    if len(uri) > MAX_LENGTH:
        raise RedirectURIError(f"A redirect URI may have at most {MAX_LENGTH} characters.")
    if not uri.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise RedirectURIError(
            "A redirect URI must be ASCII without spaces or control characters (use punycode for IDN hosts)."
        )
    if "\\" in uri:
        raise RedirectURIError("A redirect URI must not contain a backslash (browsers read it as '/').")
    if "#" in uri:
        raise RedirectURIError("A redirect URI must not contain a fragment (RFC 6749 §3.1.2).")
    scheme, _colon, rest = uri.partition(":")
    scheme = scheme.lower()
    if ":" not in uri or not _SCHEME.match(scheme):
        raise RedirectURIError("A redirect URI must be an absolute URI with a scheme.")
    if scheme in FORBIDDEN_SCHEMES:
        raise RedirectURIError(f"The '{scheme}:' scheme is never allowed for redirect URIs.")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise RedirectURIError("A redirect URI must have a valid host and port.") from None
    if "@" in parts.netloc:
        raise RedirectURIError("A redirect URI must not contain user information ('user@host').")
    if "*" in uri.partition("?")[0]:
        raise RedirectURIError("A redirect URI must not contain wildcards; register each URI exactly.")
    if _DOT_SEGMENT.search(unquote(parts.path)):
        raise RedirectURIError("A redirect URI must not contain '.' or '..' path segments.")
    if scheme in ("http", "https"):
        _check_web_uri(scheme, parts.netloc, parts.hostname, port, rest)
    else:
        _check_private_use_uri(scheme, parts.netloc, rest, native=native)


def is_allowed_redirect_uri(uri: str, *, native: bool) -> bool:
    """True when `check_redirect_uri` passes."""
    try:
        check_redirect_uri(uri, native=native)
    except RedirectURIError:
        return False
    return True


def _check_web_uri(scheme: str, netloc: str, hostname: str | None, port: int | None, rest: str) -> None:
    if not rest.startswith("//") or not netloc or not hostname:
        raise RedirectURIError(f"A {scheme} redirect URI must name a host ('{scheme}://host/path').")
    if "%" in netloc:
        raise RedirectURIError("The host of a redirect URI must not be percent-encoded.")
    if port == 0:
        raise RedirectURIError("A redirect URI's port must be between 1 and 65535.")
    if hostname.endswith("."):
        raise RedirectURIError("The host of a redirect URI must not end with a dot.")
    if netloc.startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise RedirectURIError("The host of a redirect URI must be a valid IP literal.") from None
    elif not _is_host_name(hostname):
        raise RedirectURIError("The host of a redirect URI must be a DNS name (punycode for IDN) or an IP literal.")
    if scheme == "https":
        return
    if hostname in LOOPBACK_HOSTS:
        return
    if settings.OAUTH_ALLOW_INSECURE_REDIRECT_URIS:
        return
    raise RedirectURIError(
        "Plain http redirect URIs are only allowed to the loopback interface "
        "(http://127.0.0.1, http://[::1] or http://localhost, any port); use https."
    )


def _is_host_name(hostname: str) -> bool:
    """A DNS name in its ASCII form, or a dotted-quad IPv4 literal. Browsers (WHATWG URL) read a host whose last
    label is a number ("127.1", "2130706433", "0x7f.0.0.1") as an IPv4 address: only the canonical form passes."""
    labels = hostname.split(".")
    if any(not _LABEL.match(label) for label in labels):
        return False
    if not _NUMERIC_LABEL.match(labels[-1]):
        return True
    try:
        return str(ipaddress.IPv4Address(hostname)) == hostname
    except ValueError:
        return False


def _check_private_use_uri(scheme: str, netloc: str, rest: str, *, native: bool) -> None:
    if scheme in WEB_SCHEMES:
        raise RedirectURIError(f"The '{scheme}:' scheme is not a redirect URI scheme; use https.")
    if "." not in scheme:
        raise RedirectURIError(
            f"'{scheme}:' is not a private-use scheme: RFC 8252 §7.1 needs a reverse domain name "
            "you control (e.g. com.example.app:/callback)."
        )
    if not native:
        raise RedirectURIError(
            "Private-use URI schemes are only for native apps (public clients, token_endpoint_auth_method "
            "'none'); a web client needs an https redirect URI."
        )
    if not rest.startswith("/") or rest == "/" or rest.startswith("///") or (rest.startswith("//") and not netloc):
        raise RedirectURIError(f"A private-use redirect URI needs a path ('{scheme}:/callback').")
