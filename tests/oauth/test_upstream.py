"""Upstream sign-in ("Sign in with <provider>"): the checks of each step, the error pages, the admin's
write-only secret. The whole flow in a browser, with globex as acme's upstream: tests/browser/test_upstream_login.py.

Where the server must call an upstream, the upstream is globex on the live uvicorn server (`asgi_server`)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client as HttpClient
from django.test import RequestFactory
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.models import AuditEvent
from authsec_site.lib import vault
from oauth import upstream
from oauth.models import UpstreamProvider
from oauth.upstream import UpstreamError
from oauth.upstream_services import save_upstream_provider
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD
from tests.support.live import LiveServer

pytestmark = pytest.mark.django_db
SECRET = "upstream-client-secret-" + secrets.token_urlsafe(16)


@pytest.fixture(autouse=True)
def _loopback_upstreams(settings) -> None:  # type: ignore[no-untyped-def]
    """The upstream here is globex on the live server (127.0.0.1): the development setting admits loopback.
    Without it the outbound guard refuses loopback, as `test_a_loopback_upstream_is_refused_by_default` shows."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True


@pytest.fixture
def vault_paths() -> Iterator[list[str]]:
    """Vault secrets written by a test; removed afterwards (the database rollback cannot remove them)."""
    paths: list[str] = []
    yield paths
    for path in paths:
        vault.kv_delete_all(path)


@pytest.fixture
def acme_tenant(acme) -> Iterator[Tenant]:  # type: ignore[no-untyped-def]
    """Inside acme with the real tenant row as `connection.tenant` (its name appears in messages)."""
    with tenant_context(acme):
        yield acme


@pytest.fixture
def make_provider(acme_tenant, vault_paths) -> Callable[..., UpstreamProvider]:  # type: ignore[no-untyped-def]
    def make(**fields: object) -> UpstreamProvider:
        values: dict[str, object] = {
            "name": "Globex",
            "slug": f"idp-{uuid.uuid4().hex[:10]}",
            "issuer": "https://idp.example.com",
            "client_id": "acme-at-idp",
        }
        values.update(fields)
        provider = save_upstream_provider(actor="tests", provider=UpstreamProvider(**values), client_secret=SECRET)
        vault_paths.append(provider.vault_path)
        return provider

    return make


def _failures(reason: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.objects.filter(action="auth.login_failed") if e.data.get("reason") == reason]


# --- Login page and routing -----------------------------------------------------------------------------------


def test_login_page_offers_enabled_providers_and_keeps_next(make_provider) -> None:  # type: ignore[no-untyped-def]
    shown = make_provider(name="Globex")
    make_provider(name="Retired IdP", is_enabled=False)
    page = HttpClient().get("/t/acme/accounts/login/?next=/t/acme/oauth/authorize%3Fclient_id%3Dx").content.decode()
    assert "Sign in with Globex" in page
    assert "Retired IdP" not in page
    assert (
        f'href="/t/acme/accounts/upstream/{shown.slug}/start?next=%2Ft%2Facme%2Foauth%2Fauthorize%3Fclient_id%3Dx"'
        in page
    )


def test_unknown_disabled_and_other_tenant_providers_are_not_found(make_provider) -> None:  # type: ignore[no-untyped-def]
    disabled = make_provider(is_enabled=False)
    enabled = make_provider()
    http = HttpClient()
    for url in (
        "/t/acme/accounts/upstream/nosuch/start",
        f"/t/acme/accounts/upstream/{disabled.slug}/start",
        f"/t/acme/accounts/upstream/{disabled.slug}/callback?state=x&code=y",
        f"/t/globex/accounts/upstream/{enabled.slug}/start",
    ):
        response = http.get(url)
        assert response.status_code == 404, url
        assert "does not exist or has been turned off" in response.content.decode()


# --- Start and callback against a real upstream (globex on the live server) ---------------------------------------


def _globex_provider(make_provider, server: LiveServer, **fields: object) -> UpstreamProvider:  # type: ignore[no-untyped-def]
    return make_provider(issuer=f"{server.url}/t/globex/oauth", client_id="acme-at-globex", **fields)


def test_start_redirects_to_the_upstream_with_pkce_state_and_nonce(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    provider = _globex_provider(make_provider, asgi_server)
    http = HttpClient()
    response = http.get(f"/t/acme/accounts/upstream/{provider.slug}/start?next=/t/acme/somewhere")
    assert response.status_code == 302, response.content.decode()[:2000]
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{asgi_server.url}/t/globex/oauth/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    pending = http.session[upstream.SESSION_KEY]
    assert query["response_type"] == "code"
    assert query["client_id"] == "acme-at-globex"
    assert query["scope"] == "openid email profile"
    assert query["redirect_uri"] == upstream.redirect_uri(provider)
    assert query["redirect_uri"].endswith(f"/t/acme/accounts/upstream/{provider.slug}/callback")
    assert query["state"] == pending["state"]
    assert query["nonce"] == pending["nonce"]
    assert query["code_challenge_method"] == "S256"
    digest = hashlib.sha256(pending["verifier"].encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pending["next"] == "/t/acme/somewhere"


def test_refuses_a_callback_with_the_wrong_state(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    provider = _globex_provider(make_provider, asgi_server)
    http = HttpClient()
    http.get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    callback = f"/t/acme/accounts/upstream/{provider.slug}/callback"
    response = http.get(callback, {"state": "forged", "code": "abc", "iss": provider.issuer})
    assert response.status_code == 400
    assert "does not belong to your browser session" in response.content.decode()
    assert "_auth_user_id" not in http.session
    [event] = _failures("state_mismatch")
    assert event.data["via"] == f"upstream:{provider.slug}"
    assert event.outcome == AuditEvent.Outcome.FAILURE
    # The attempt is used up: even its right state is refused now.
    response = http.get(callback, {"state": "anything", "code": "abc"})
    assert "expired or was already used" in response.content.decode()


def test_refuses_a_callback_from_another_issuer(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    provider = _globex_provider(make_provider, asgi_server)
    http = HttpClient()
    start = http.get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = http.get(
        f"/t/acme/accounts/upstream/{provider.slug}/callback",
        {"state": state, "code": "abc", "iss": f"{asgi_server.url}/t/acme/oauth"},
    )
    assert response.status_code == 400
    assert "came from a different provider" in response.content.decode()
    assert _failures("iss_mismatch")


def test_refuses_a_callback_without_iss_when_the_upstream_sends_it(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    provider = _globex_provider(make_provider, asgi_server)
    http = HttpClient()
    start = http.get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = http.get(f"/t/acme/accounts/upstream/{provider.slug}/callback", {"state": state, "code": "abc"})
    assert response.status_code == 400
    assert _failures("iss_missing")


def test_an_upstream_refusal_is_shown_and_audited(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    provider = _globex_provider(make_provider, asgi_server)
    http = HttpClient()
    start = http.get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = http.get(
        f"/t/acme/accounts/upstream/{provider.slug}/callback",
        {"state": state, "iss": provider.issuer, "error": "access_denied", "error_description": "<b>no</b>"},
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "Globex did not sign you in (access_denied)." in page
    assert "<b>no</b>" not in page
    assert _failures("upstream_refused")[0].data["detail"] == "access_denied"


def test_a_callback_without_a_started_sign_in_is_refused(make_provider) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider()
    response = HttpClient().get(f"/t/acme/accounts/upstream/{provider.slug}/callback", {"state": "s", "code": "c"})
    assert response.status_code == 400
    assert "expired or was already used" in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert _failures("no_pending_sign_in")


def test_refuses_an_upstream_whose_discovery_names_another_issuer(make_provider, asgi_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    # Globex's issuer has no trailing slash; the discovery document must name exactly the configured issuer.
    provider = make_provider(issuer=f"{asgi_server.url}/t/globex/oauth/")
    response = HttpClient().get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    assert response.status_code == 502
    page = response.content.decode()
    assert "Sign-in with Globex is not available right now" in page
    assert SECRET not in page
    [event] = _failures("issuer_mismatch")
    assert "configured" in event.data["detail"]


def test_an_unreachable_upstream_gives_a_clean_error_page(make_provider) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider(issuer="http://127.0.0.1:9/nothing-listens-here")
    response = HttpClient().get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    assert response.status_code == 502
    assert 'id="upstream-error"' in response.content.decode()
    assert _failures("upstream_unreachable")


def test_a_loopback_upstream_is_refused_by_default(make_provider, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    provider = make_provider(issuer="http://127.0.0.1:9/nothing-listens-here")
    response = HttpClient().get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    assert response.status_code == 502
    [event] = _failures("upstream_blocked_address")
    assert "non-public address (127.0.0.1)" in event.data["detail"]


@pytest.mark.parametrize("issuer", ["https://169.254.169.254/latest", "https://[::ffff:10.0.0.1]", "https://10.1.2.3"])
def test_a_private_upstream_issuer_is_never_fetched(make_provider, settings, issuer: str) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider(issuer=issuer)  # the development setting (on here) admits loopback, nothing else
    response = HttpClient().get(f"/t/acme/accounts/upstream/{provider.slug}/start")
    assert response.status_code == 502
    assert _failures("upstream_blocked_address")


# --- The checks, one by one ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("/t/acme/oauth/authorize?client_id=x&state=y", "/t/acme/oauth/authorize?client_id=x&state=y"),
        ("/t/acme/", "/t/acme/"),
        (None, "/t/acme/"),
        ("https://evil.example/t/acme/", "/t/acme/"),
        ("//evil.example/t/acme/", "/t/acme/"),
        ("/t/globex/admin/", "/t/acme/"),
        ("/t/acme/../globex/admin/", "/t/acme/"),
        ("/t/acme/%2e%2e/globex/", "/t/acme/"),
        ("/\\evil.example", "/t/acme/"),
        ("javascript:alert(1)", "/t/acme/"),
    ],
)
def test_next_must_stay_inside_the_tenant(acme_tenant, candidate: str | None, expected: str) -> None:  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/t/acme/accounts/upstream/x/start")
    request.tenant = acme_tenant
    assert upstream.safe_next(request, candidate) == expected


def test_issuer_urls_must_be_https_in_production_except_loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    assert upstream.check_url("https://accounts.google.com")
    assert upstream.check_url("http://127.0.0.1:8000/t/globex/oauth")
    assert upstream.check_url("http://localhost:8000/t/globex/oauth")
    for url, reason in (
        ("http://idp.example.com", "insecure_url"),
        ("ftp://idp.example.com", "bad_url"),
        ("https://user:pw@idp.example.com", "bad_url"),
        ("idp.example.com", "bad_url"),
    ):
        with pytest.raises(UpstreamError) as caught:
            upstream.check_url(url)
        assert caught.value.reason == reason, url
    settings.DEBUG = True
    assert upstream.check_url("http://idp.example.com")


def _claims(**extra: object) -> dict[str, object]:
    return {"sub": "u-1", "email": "New.Person@Acme-Partner.test", "email_verified": True, **extra}


def test_identity_needs_a_verified_email(make_provider) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider()
    assert upstream.check_identity_claims(_claims(), provider) == "new.person@acme-partner.test"
    for claims, reason in (
        (_claims(email_verified=False), "email_unverified"),
        (_claims(email_verified="false"), "email_unverified"),
        ({"sub": "u-1", "email": "a@b.test"}, "email_unverified"),
        ({"sub": "u-1", "email_verified": True}, "email_missing"),
        (_claims(email="not-an-address"), "email_missing"),
    ):
        with pytest.raises(UpstreamError) as caught:
            upstream.check_identity_claims(claims, provider)
        assert caught.value.reason == reason, claims
        assert caught.value.status == 403
    with pytest.raises(UpstreamError) as caught:
        upstream.check_identity_claims(_claims(email_verified=False), provider)
    assert "has not verified the email address new.person@acme-partner.test" in caught.value.message


def test_allowed_domains_restrict_who_may_sign_in(make_provider) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider(allowed_email_domains=["acme-partner.test"])
    assert upstream.check_identity_claims(_claims(), provider) == "new.person@acme-partner.test"
    with pytest.raises(UpstreamError) as caught:
        upstream.check_identity_claims(_claims(email="x@evil.test"), provider)
    assert caught.value.reason == "email_domain_not_allowed"
    # A subdomain is another domain.
    with pytest.raises(UpstreamError):
        upstream.check_identity_claims(_claims(email="x@sub.acme-partner.test"), provider)


def test_unknown_email_is_refused_without_auto_create(make_provider) -> None:  # type: ignore[no-untyped-def]
    provider = make_provider(auto_create_users=False)
    with pytest.raises(UpstreamError) as caught:
        upstream.find_or_create_user(provider, "stranger@acme-partner.test", _claims())
    assert caught.value.reason == "no_account"
    assert "There is no account for stranger@acme-partner.test at Acme Corp" in caught.value.message
    assert not User.objects.filter(email="stranger@acme-partner.test").exists()


def test_first_sign_in_links_an_existing_user_or_creates_one(make_provider) -> None:  # type: ignore[no-untyped-def]
    existing = UserFactory(email="known@acme-partner.test")
    linking = make_provider(auto_create_users=False)
    assert upstream.find_or_create_user(linking, "known@acme-partner.test", _claims()) == (existing, False)
    creating = make_provider(auto_create_users=True)
    user, created = upstream.find_or_create_user(creating, "new@acme-partner.test", _claims(name="New Person"))
    assert created
    assert (user.email, user.full_name, user.has_usable_password(), user.is_staff) == (
        "new@acme-partner.test",
        "New Person",
        False,
        False,
    )
    event = AuditEvent.objects.get(action="accounts.user_created", target_id=str(user.pk))
    assert event.data["via"] == f"upstream:{creating.slug}"


def test_a_disabled_user_cannot_sign_in_upstream(make_provider) -> None:  # type: ignore[no-untyped-def]
    UserFactory(email="gone@acme-partner.test", is_active=False)
    with pytest.raises(UpstreamError) as caught:
        upstream.find_or_create_user(make_provider(), "gone@acme-partner.test", _claims())
    assert caught.value.reason == "inactive_user"


# --- ID token verification with a key of our own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing() -> tuple[object, dict[str, object]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
    return private, public


def _token(private: object, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "https://idp.example.com",
        "aud": "acme-at-idp",
        "sub": "u-1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "email": "a@b.test",
        "email_verified": True,
    }
    claims.update(overrides)
    claims = {key: value for key, value in claims.items() if value is not None}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": "test-key"})  # type: ignore[arg-type]


def _verify(token: str, public: dict[str, object], **overrides: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "keys": [public],
        "issuer": "https://idp.example.com",
        "client_id": "acme-at-idp",
        "nonce": "n-1",
        "algorithms": ["RS256"],
    }
    kwargs.update(overrides)
    return upstream.verify_id_token(token, **kwargs)  # type: ignore[arg-type]


def test_id_token_is_verified_with_the_upstream_keys(signing) -> None:  # type: ignore[no-untyped-def]
    private, public = signing
    assert _verify(_token(private), public)["email"] == "a@b.test"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        _token(private, nonce="someone-elses"),
        _token(private, nonce=None),
        _token(private, aud="another-client"),
        _token(private, aud=["acme-at-idp", "another-client"]),  # several audiences need azp = us
        _token(private, iss="https://evil.example"),
        _token(private, exp=int(time.time()) - 3600),
        _token(private, sub=None),
        _token(other),  # signed by a key that is not the upstream's
        jwt.encode({"iss": "https://idp.example.com"}, "a-shared-secret-of-at-least-32-bytes", algorithm="HS256"),
        "not-a-jwt",
    ):
        with pytest.raises(UpstreamError) as caught:
            _verify(token, public)
        assert caught.value.reason == "id_token_invalid"
    assert _verify(_token(private, aud=["acme-at-idp", "x"], azp="acme-at-idp"), public)["sub"] == "u-1"
    with pytest.raises(LookupError):  # an unknown kid makes the caller fetch the key set again
        _verify(_token(private), {**public, "kid": "rotated"})


# --- Admin: the secret is write-only ---------------------------------------------------------------------------------


def test_admin_keeps_the_client_secret_only_in_vault(in_acme, vault_paths) -> None:  # type: ignore[no-untyped-def]
    http = HttpClient()
    login = http.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    assert login.status_code == 302, login.context["form"].errors
    slug = f"idp-{uuid.uuid4().hex[:10]}"
    form = {
        "name": "Partner IdP",
        "slug": slug,
        "issuer": "https://idp.example.com",
        "client_id": "acme-at-partner",
        "client_secret": SECRET,
        "scopes": "openid email profile",
        "is_enabled": "on",
        "allowed_email_domains": "Acme-Partner.test",
    }
    response = http.post("/t/acme/admin/oauth/upstreamprovider/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    provider = UpstreamProvider.objects.get(slug=slug)
    vault_paths.append(provider.vault_path)
    assert provider.vault_path == vault.tenant_path("tenant_acme", "oauth", "upstream", slug)
    assert provider.allowed_email_domains == ["acme-partner.test"]
    assert vault.kv_read(provider.vault_path) == ({"client_secret": SECRET}, provider.secret_version)
    assert upstream.client_secret(provider) == SECRET

    change_url = f"/t/acme/admin/oauth/upstreamprovider/{provider.pk}/change/"
    page = http.get(change_url).content.decode()
    assert SECRET not in page
    assert f"Stored in Vault (version {provider.secret_version})" in page
    assert f"/t/acme/accounts/upstream/{slug}/callback" in page

    # An empty secret on edit keeps the stored one; a new one becomes a new Vault version.
    edit = {key: value for key, value in form.items() if key != "slug"}
    first_version = provider.secret_version
    assert http.post(change_url, {**edit, "client_secret": "", "name": "Partner"}).status_code == 302
    provider.refresh_from_db()
    assert (provider.name, provider.secret_version) == ("Partner", first_version)
    assert upstream.client_secret(provider) == SECRET
    assert http.post(change_url, {**edit, "client_secret": SECRET + "-2"}).status_code == 302
    provider.refresh_from_db()
    assert provider.secret_version == first_version + 1
    assert upstream.client_secret(provider) == SECRET + "-2"

    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("oauth.upstream_created") == 1
    assert actions.count("oauth.upstream_changed") == 2
    assert not [action for action in actions if action.startswith("admin.")]  # one event per change
    created = AuditEvent.objects.get(action="oauth.upstream_created")
    assert (created.actor_label, created.data["before"], created.data["secret_changed"]) == (
        "admin@acme.test",
        None,
        True,
    )
    assert created.data["after"]["slug"] == slug and created.data["after"]["secret_version"] == first_version
    changed = AuditEvent.objects.filter(action="oauth.upstream_changed").order_by("created_at", "pk")
    assert [event.data["secret_changed"] for event in changed] == [False, True]
    assert changed[0].data["changes"] == {"name": {"before": "Partner IdP", "after": "Partner"}}
    for event in AuditEvent.objects.all():
        assert SECRET not in json.dumps(event.data), event.action


def test_admin_requires_a_secret_for_a_new_provider_and_https_issuers(in_acme, settings) -> None:  # type: ignore[no-untyped-def]
    http = HttpClient()
    http.post("/t/acme/admin/login/", {"username": "admin@acme.test", "password": ADMIN_PASSWORD})
    settings.DEBUG = False
    response = http.post(
        "/t/acme/admin/oauth/upstreamprovider/add/",
        {
            "name": "Plain",
            "slug": "plain-http",
            "issuer": "http://idp.example.com",
            "client_id": "x",
            "scopes": "openid profile",
            "is_enabled": "on",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "A new provider needs its client secret." in page
    assert "must use https" in page
    assert "Sign-in needs the scope(s) email." in page
    assert not UpstreamProvider.objects.filter(slug="plain-http").exists()
