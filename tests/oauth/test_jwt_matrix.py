"""The JWT attack matrix: every forged, misused or dead token is refused at all four doors that take a bearer —
the MCP endpoint (401 + RFC 6750/9728 challenge), userinfo (401 invalid_token), introspection (``{"active": false}``
for a properly authenticated resource server) and the management API (401) — on the live server.

Forged tokens are signed with real keys: an attacker's own RSA key, or the tenant's real signing key (read
through `oauth.keys`) with one claim changed, so each case fails for its own reason and not for a bad signature.
The positive control shows the same requests succeed with the real tokens, so the matrix can fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.services import deactivate_user, delete_user
from oauth.keys import current_key, private_jwk
from tests.factories import UserFactory
from tests.support.live import LiveServer
from tests.support.mcp import Committed, commit_in_acme, get_tokens, modern_rpc
from tests.support.oauth import PASSWORD, ResourceServer, make_resource_server

pytestmark = pytest.mark.django_db

ENDPOINTS = ("mcp", "userinfo", "introspection", "api")
EXTRA_USERS = ("matrix-deactivated@acme.test", "matrix-deleted@acme.test", "matrix-revoked@acme.test")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{signature}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT (rightly) refuses to use a public key as an HMAC secret."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


class FetchTrap:
    """An HTTP server that notes every request: a `jku`/`x5u` pointing here must never be fetched."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                trap.hits.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@dataclass
class World:
    server: LiveServer
    claims: dict[str, Any]  # alice's real MCP access token, decoded
    header: dict[str, Any]
    real: dict[str, str]  # the genuine token for each door (positive control)
    acme_key: Any  # acme's real private signing key
    acme_public_jwk: dict[str, Any]
    acme_public_pem: bytes
    globex_key: Any
    globex_kid: str
    attacker: rsa.RSAPrivateKey
    attacker_jwk: dict[str, Any]
    trap: FetchTrap
    rs: ResourceServer
    alice: dict[str, Any]  # alice's MCP token response (access, refresh, id)
    globex_token: str
    dead: dict[str, dict[str, str]]  # tokens of the deactivated / deleted / revoked users, per door


def _real_key(schema: str) -> tuple[Any, str, dict[str, Any]]:
    with schema_context(schema):
        key = current_key()
        return private_jwk(key)[0], key.kid, key.public_jwk


@pytest.fixture(scope="module")
def world(asgi_server: LiveServer, committed: Committed, django_db_blocker) -> Iterator[World]:  # type: ignore[no-untyped-def]  # noqa: F811
    with django_db_blocker.unblock():

        def setup() -> ResourceServer:
            User.objects.filter(email="dave@acme.test").update(is_staff=True, is_superuser=True)  # holds `admin`
            for email in EXTRA_USERS:
                user = UserFactory(email=email)
                user.set_password(PASSWORD)
                user.save()
            return make_resource_server("JWT matrix resource server")

        rs = commit_in_acme(setup)
        alice = get_tokens(asgi_server, committed, "alice@acme.test", scope="openid email read offline_access")
        admin_api = get_tokens(asgi_server, committed, "dave@acme.test", scope="openid email admin", resource=None)
        globex_token = get_tokens(asgi_server, committed, "erin@globex.test", tenant="globex")["access_token"]
        dead: dict[str, dict[str, str]] = {}
        for email in EXTRA_USERS:
            bound = get_tokens(asgi_server, committed, email, scope="openid email")["access_token"]
            unbound = get_tokens(asgi_server, committed, email, scope="openid email", resource=None)["access_token"]
            dead[email] = {"mcp": bound, "introspection": bound, "userinfo": unbound, "api": unbound}

        def kill() -> None:
            deactivate_user(actor="tests", user=User.objects.get(email=EXTRA_USERS[0]))
            delete_user(actor="tests", user=User.objects.get(email=EXTRA_USERS[1]))

        commit_in_acme(kill)
        client_id = committed.client_ids["acme"]
        for token in dead[EXTRA_USERS[2]].values():
            revoked = httpx2.post(
                f"{asgi_server.url}/t/acme/oauth/revoke", data={"token": token, "client_id": client_id}
            )
            assert revoked.status_code == 200
        acme_key, _kid, acme_public = _real_key("tenant_acme")
        globex_key, globex_kid, _ = _real_key("tenant_globex")
        attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
        access, admin_token = alice["access_token"], admin_api["access_token"]
        yield World(
            server=asgi_server,
            claims=jwt.decode(access, options={"verify_signature": False}),
            header=jwt.get_unverified_header(access),
            real={
                "mcp": access,
                "introspection": access,
                "userinfo": admin_token,
                "api": admin_token,
            },
            acme_key=acme_key,
            acme_public_jwk=acme_public,
            acme_public_pem=jwt.PyJWK(acme_public).key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            globex_key=globex_key,
            globex_kid=globex_kid,
            attacker=attacker,
            attacker_jwk={**attacker_jwk, "kid": "attacker"},
            trap=FetchTrap(),
            rs=rs,
            alice=alice,
            globex_token=globex_token,
            dead=dead,
        )

        def teardown() -> None:
            User.objects.filter(email__in=EXTRA_USERS).delete()
            rs.client.delete()

        commit_in_acme(teardown)


# --- The cases -----------------------------------------------------------------------------------------------------


def _real_signed(w: World, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """alice's claims with `claims` changed, signed with acme's real key (header: the real one, changed)."""
    return jwt.encode({**w.claims, **claims}, w.acme_key, algorithm="RS256", headers={**w.header, **(header or {})})


def _attacker_signed(w: World, header: dict[str, Any]) -> str:
    headers = {"typ": "at+jwt", **header}
    return jwt.encode(w.claims, w.attacker, algorithm="RS256", headers=headers)


def _none(alg: str) -> Callable[[World], str]:
    return lambda w: unsigned({**w.header, "alg": alg}, w.claims)


CASES: dict[str, Callable[[World], str | dict[str, str]]] = {
    # alg "none" and its case variants, with and without a trailing signature part
    "alg-none": _none("none"),
    "alg-None": _none("None"),
    "alg-NONE": _none("NONE"),
    "alg-nOnE": _none("nOnE"),
    "alg-none-with-signature": lambda w: unsigned({**w.header, "alg": "none"}, w.claims, w.real["mcp"].split(".")[2]),
    # RS256 -> HS256 confusion: the public key (PEM, JWK JSON) used as the HMAC secret
    "hs256-public-pem": lambda w: hs256({**w.header, "alg": "HS256"}, w.claims, w.acme_public_pem),
    "hs256-public-jwk-json": lambda w: hs256(
        {**w.header, "alg": "HS256"}, w.claims, json.dumps(w.acme_public_jwk).encode()
    ),
    # kid: traversal, injection, unknown, empty
    "kid-traversal-real-key": lambda w: _real_signed(w, {"kid": "../../../../etc/passwd"}),
    "kid-sql-injection": lambda w: _attacker_signed(w, {"kid": "' OR 1=1 --"}),
    "kid-unknown": lambda w: _attacker_signed(w, {"kid": uuid.uuid4().hex}),
    "kid-empty": lambda w: _attacker_signed(w, {"kid": ""}),
    "kid-missing-real-key": lambda w: jwt.encode(w.claims, w.acme_key, algorithm="RS256", headers={"typ": "at+jwt"}),
    # keys offered by the token itself: never trusted, never fetched
    "jku-attacker-jwks": lambda w: _attacker_signed(w, {"kid": "attacker", "jku": f"{w.trap.url}/jwks.json"}),
    "x5u-attacker-cert": lambda w: _attacker_signed(w, {"kid": "attacker", "x5u": f"{w.trap.url}/cert.pem"}),
    "jku-with-real-kid": lambda w: _attacker_signed(w, {"kid": w.header["kid"], "jku": f"{w.trap.url}/jwks.json"}),
    "embedded-jwk": lambda w: _attacker_signed(w, {"kid": w.header["kid"], "jwk": w.attacker_jwk}),
    "embedded-jwk-own-kid": lambda w: _attacker_signed(w, {"kid": "attacker", "jwk": w.attacker_jwk}),
    # crit with an extension nobody understands (validly signed otherwise)
    "crit-unknown-extension": lambda w: _real_signed(w, {"crit": ["urn:example:evil"], "urn:example:evil": True}),
    # time and audience claims, validly signed
    "expired": lambda w: _real_signed(w, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    "nbf-in-the-future": lambda w: _real_signed(w, nbf=int(time.time()) + 3600),
    "wrong-iss": lambda w: _real_signed(w, iss=w.claims["iss"].replace("/t/acme/", "/t/globex/")),
    "wrong-aud": lambda w: _real_signed(w, aud="https://evil.example/mcp"),
    "no-exp": lambda w: jwt.encode(
        {k: v for k, v in w.claims.items() if k != "exp"}, w.acme_key, algorithm="RS256", headers=w.header
    ),
    "sub-of-another-user": lambda w: _real_signed(w, sub="999999"),
    # another tenant: globex's real token, and acme's claims signed with globex's key
    "globex-token": lambda w: w.globex_token,
    "globex-key-acme-claims": lambda w: jwt.encode(
        w.claims, w.globex_key, algorithm="RS256", headers={**w.header, "kid": w.globex_kid}
    ),
    # real tokens of the wrong kind or of the wrong user
    "id-token-as-access-token": lambda w: w.alice["id_token"],
    "refresh-token-as-bearer": lambda w: w.alice["refresh_token"],
    "deactivated-user": lambda w: w.dead[EXTRA_USERS[0]],
    "deleted-user": lambda w: w.dead[EXTRA_USERS[1]],
    "revoked-token": lambda w: w.dead[EXTRA_USERS[2]],
    # malformed and oversized
    "oversized-12kb-claims": lambda w: _real_signed(w, padding="x" * 12_000),
    "oversized-100kb": lambda w: w.real["mcp"] + "A" * 100_000,
    "bad-base64": lambda w: "eyJ!!!.eyJ###.c2ln$$",
    "two-segments": lambda w: ".".join(w.real["mcp"].split(".")[:2]),
    "four-segments": lambda w: w.real["mcp"] + ".AAAA",
    "non-json-header": lambda w: f"{b64(b'not json')}.{w.real['mcp'].split('.', 1)[1]}",
    "header-is-a-json-list": lambda w: f"{b64json(['RS256'])}.{w.real['mcp'].split('.', 1)[1]}",
}


# --- The four doors ------------------------------------------------------------------------------------------------


def _door(w: World, endpoint: str, token: str) -> httpx2.Response:
    base, auth = f"{w.server.url}/t/acme", {"Authorization": f"Bearer {token}"}
    if endpoint == "mcp":  # a stateless (2026-07-28) tools/list: one request, no session to set up
        return modern_rpc(f"{base}/mcp/demo", "tools/list", {}, auth)
    if endpoint == "userinfo":
        return httpx2.get(f"{base}/oauth/userinfo", headers=auth, timeout=30)
    if endpoint == "introspection":
        return httpx2.post(
            f"{base}/oauth/introspect", data={"token": token}, auth=(w.rs.client.client_id, w.rs.secret), timeout=30
        )
    return httpx2.get(f"{base}/api/roles/", headers=auth, timeout=30)


def _assert_refused(w: World, endpoint: str, response: httpx2.Response) -> None:
    if endpoint == "introspection":
        assert (response.status_code, response.json()) == (200, {"active": False})
        return
    assert response.status_code == 401, response.text[:500]
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    if endpoint == "mcp":
        resource_metadata = f"{w.server.url}/.well-known/oauth-protected-resource/t/acme/mcp/demo"
        assert f'resource_metadata="{resource_metadata}"' in challenge and 'error="invalid_token"' in challenge
    elif endpoint == "userinfo":
        assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_positive_control_the_real_token_is_accepted(world: World, endpoint: str) -> None:
    response = _door(world, endpoint, world.real[endpoint])
    assert response.status_code == 200, response.text[:500]
    if endpoint == "introspection":
        assert response.json()["active"] is True
    if endpoint == "mcp":
        assert "hello" in {tool["name"] for tool in response.json()["result"]["tools"]}
    if endpoint == "userinfo":
        assert response.json()["email"] == "dave@acme.test"


TRANSPORT_REFUSED = frozenset({"oversized-100kb"})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_token_is_refused(world: World, case: str, endpoint: str) -> None:
    built = CASES[case](world)
    token = built[endpoint] if isinstance(built, dict) else built
    before = len(world.trap.hits)
    try:
        response = _door(world, endpoint, token)
    except httpx2.TransportError:
        # Only a header block past uvicorn's HTTP parser limit (h11: 16 KiB) may be refused before any app code
        # runs: uvicorn answers 400 and closes, which the client may see as a reset while it is still sending.
        assert case in TRANSPORT_REFUSED, case
    else:
        if case in TRANSPORT_REFUSED and response.status_code == 400:
            assert "Bearer" not in response.headers.get("www-authenticate", "")  # the HTTP layer, not ours
        else:
            _assert_refused(world, endpoint, response)
    assert len(world.trap.hits) == before, f"the server fetched {world.trap.hits[before:]}"
