"""Browser pages (consent) and the endpoints django-oauth-toolkit does not shape for us
(metadata, JWKS, introspection for resource servers, dynamic registration with approval)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET
from oauth2_provider import cimd
from oauth2_provider import views as dot
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.oauth2_backends import _add_iss_to_redirect  # the helper DOT uses on success redirects
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.signals import app_authorized
from oauthlib.common import Request as OauthlibRequest
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

import audit
from audit.recorder import Actor
from authsec_site.lib import coherence, metrics
from authsec_site.lib.jsonbody import JSONBodyError, parse_json
from oauth import client_services, introspection, issuance, issuer
from oauth.errors import oauth_error
from oauth.keys import published_keys
from oauth.models import Client, Consent, ProviderSettings
from oauth.redirect_uris import RedirectURIError, check_redirect_uri
from oauth.scopes import TenantScopes, granted_scopes
from oauth.validators import unknown_resource_error, unknown_resources
from rbac import grants

# --- Browser pages -------------------------------------------------------------------------------------------


@require_GET
def root_authorization_server_metadata(request: HttpRequest, slug: str) -> JsonResponse:
    """RFC 8414 at the origin root: /.well-known/oauth-authorization-server/t/<slug>/oauth."""
    from django_tenants.utils import tenant_context

    from tenants.models import Tenant

    tenant = Tenant.objects.serving().filter(slug=slug).first()
    if tenant is None:
        return JsonResponse({"error": "not_found", "error_description": "No such issuer."}, status=404)
    with tenant_context(tenant):
        return _json(server_metadata(oidc=False))


@method_decorator(never_cache, name="dispatch")
class AuthorizeView(dot.AuthorizationView):
    """Authorization endpoint with a consent page remembered per (user, client) until revoked."""

    template_name = "oauth/authorize.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Before sign-in (DOT asks for it first): a held client's user learns why it cannot continue, and is not
        # sent back to a client nobody has approved yet.
        client_id = request.GET.get("client_id") or request.POST.get("client_id") or ""
        if client_id and "\x00" not in client_id:
            known = Client.objects.filter(client_id=client_id).first()
            if known is None and cimd.is_cimd_client_id(client_id):
                # A CIMD client's first sight: register it now (held unless registration is open), so that its
                # user is told at once, not after signing in.
                known = cimd.resolve_cimd_application(client_id, OauthlibRequest(request.build_absolute_uri()))
            held = known if known is not None and known.status != Client.Status.ACTIVE else None
            if held is not None:
                context = {"client": held, "refusal": held.refusal(request.tenant.name)}
                return render(request, "oauth/client_unavailable.html", context, status=403)
        return super().dispatch(request, *args, **kwargs)

    def validate_authorization_request(self, request: HttpRequest) -> tuple[list[str], dict[str, Any]]:
        # The consent page lists (and remembers) only the scopes this user may be granted (oauth.scopes);
        # the validator narrows the code's scopes again whatever the form posts back.
        scopes, credentials = super().validate_authorization_request(request)
        return granted_scopes(scopes, request.user), credentials

    def error_response(self, error: Any, application: Any, **kwargs: Any) -> HttpResponse:
        # RFC 9207 on error responses too: DOT adds `iss` only to redirects oauthlib builds itself, not to the
        # errors raised around it (missing PKCE challenge, consent denied, invalid_target, invalid_scope…).
        response = super().error_response(error, application, **kwargs)
        if response.has_header("Location") and oauth2_settings.COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS:
            response["Location"] = _add_iss_to_redirect(response["Location"], issuer.issuer_for())
        return response

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        application = context.get("application")
        scopes = set(context.get("scopes") or [])
        resources = (context.get("resource") or "").split()
        unknown = unknown_resources(resources) if application is not None else []
        if unknown and "error" not in context:
            # Refuse before the consent page, not after the user allowed (the validator checks again on save).
            error = unknown_resource_error(unknown[0], state=context.get("state"))
            return self.error_response(OAuthToolkitError(error, redirect_uri=context["redirect_uri"]), application)
        if application is not None and "error" not in context and self._remembered(application, scopes):
            form = self.get_form_class()(data={**self.get_initial(), "allow": True})
            if form.is_valid():
                return self.form_valid(form)
        if application is not None:
            context["redirect_host"] = urlparse(context.get("redirect_uri") or "").netloc
        return super().render_to_response(context, **kwargs)

    def _remembered(self, application: Client, scopes: set[str]) -> bool:
        consent = Consent.objects.filter(user=self.request.user, client=application, revoked_at__isnull=True).first()
        return consent is not None and consent.covers(scopes)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        application = Client.objects.filter(client_id=form.cleaned_data.get("client_id")).first()
        location = response.get("Location", "")
        if application is None:
            return response
        allowed = bool(form.cleaned_data.get("allow"))
        scopes = sorted((form.cleaned_data.get("scope") or "").split())
        if allowed and "error=" not in location:
            with transaction.atomic():
                consent = (
                    Consent.objects.select_for_update()
                    .filter(user=self.request.user, client=application, revoked_at__isnull=True)
                    .first()
                )
                if consent is None:
                    Consent.objects.create(user=self.request.user, client=application, scopes=scopes)
                    audit.record(
                        self.request.user,
                        "oauth.consent_granted",
                        target=application,
                        data={"client_id": application.client_id, "scopes": scopes},
                    )
                elif not set(scopes) <= set(consent.scopes):
                    consent.scopes = sorted(set(consent.scopes) | set(scopes))
                    consent.save(update_fields=["scopes"])
                    audit.record(
                        self.request.user,
                        "oauth.consent_granted",
                        target=application,
                        data={"client_id": application.client_id, "scopes": consent.scopes},
                    )
        elif not allowed:
            audit.record(
                self.request.user,
                "oauth.consent_denied",
                target=application,
                outcome="deny",
                data={"client_id": application.client_id, "scopes": scopes},
            )
        return response


# --- Metadata and keys ----------------------------------------------------------------------------------------


def server_metadata(*, oidc: bool) -> dict[str, Any]:
    """RFC 8414 / OIDC discovery document of the current tenant: only what this server really supports."""
    iss = issuer.issuer_for()
    registration = ProviderSettings.current()
    data: dict[str, Any] = {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint": f"{iss}/introspect",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "scopes_supported": sorted(TenantScopes().get_all_scopes()),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": registration.allow_cimd,
    }
    if registration.dynamic_registration != ProviderSettings.Registration.CLOSED:
        data["registration_endpoint"] = f"{iss}/register"
    if oidc:
        data.update(
            {
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "email",
                    "email_verified",
                    "name",
                    "tenant_id",
                ],
            }
        )
    return data


def _json(data: dict[str, Any], max_age: int = 300) -> JsonResponse:
    response = JsonResponse(data)
    response["Cache-Control"] = f"public, max-age={max_age}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def authorization_server_metadata(request: HttpRequest) -> JsonResponse:
    return _json(server_metadata(oidc=False))


@require_GET
def openid_configuration(request: HttpRequest) -> JsonResponse:
    return _json(server_metadata(oidc=True))


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """Current signing key and retired keys whose tokens may still be valid."""
    return _json({"keys": published_keys()}, max_age=300)


# --- Token endpoint ---------------------------------------------------------------------------------------------


class TokenView(dot.TokenView):
    """DOT's token endpoint. Errors raised while the token is being stored (RFC 8707 `invalid_target`, from DOT
    and from our validator) skip oauthlib's default headers, so every answer is made JSON and uncacheable here
    (RFC 6749 §5.1, §5.2)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The version tokens of the per-process copies this request uses (OAuth issuance, RBAC grants): one Redis
        # round trip for both, each read once.
        with issuance.one_read(), coherence.read_together(issuance.VERSION_KEY, grants.VERSION_KEY):
            response = super().post(request, *args, **kwargs)
        metrics.token_request(request.POST.get("grant_type"), response.status_code, response.content)
        if response["Content-Type"].startswith("text/html"):
            response["Content-Type"] = "application/json"
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    @method_decorator(sensitive_post_parameters("password", "client_secret"))
    def authorization_flow_token_response(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """DOT's, without reading the new access token back from the database when nobody listens to
        `app_authorized` (nothing here does): the query it costs served only that signal."""
        if app_authorized.has_listeners(type(self)):
            return super().authorization_flow_token_response(request, *args, **kwargs)
        _url, headers, body, status = self.create_token_response(request)
        response = HttpResponse(content=body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response


# --- Introspection: resource servers only ---------------------------------------------------------------------


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectView(dot.IntrospectTokenView):
    """RFC 7662 for clients registered as resource servers (or tokens with the `introspection` scope).

    Tokens are looked up in the current tenant's schema only, so another tenant's token is inactive here.
    The answer (`oauth.introspection`) adds `sub`, `iss` and the scopes the holder still has to DOT's fields.
    """

    introspecting_client: Client | None = None

    def authenticate_client(self, request: HttpRequest) -> bool:
        core = self.get_oauthlib_core()
        uri, method, body, headers = core._extract_params(request)  # noqa: SLF001 - DOT's own request parsing
        oauth_request = OauthlibRequest(uri, method, body, headers)
        try:
            if not core.server.request_validator.authenticate_client(oauth_request):
                return False
        except OAuth2Error:  # a held client: DOT's introspection answers its own 401 for any refused client
            return False
        self.introspecting_client = oauth_request.client
        return bool(getattr(oauth_request.client, "is_resource_server", False))

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # RFC 7662 §2.1 is POST; a token in the query string ends up in access logs and proxies.
        response = JsonResponse(
            {"error": "invalid_request", "error_description": "Use POST with the token in the form body (RFC 7662)."},
            status=405,
        )
        response["Allow"] = "POST"
        response["Cache-Control"] = "no-store"
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return introspection.token_response(request.POST.get("token"), self.introspecting_client)


# --- Dynamic client registration (RFC 7591) -----------------------------------------------------------------------


def _refused_redirect_uri(request: HttpRequest) -> JsonResponse | None:
    """RFC 7591 §3.2.2 `invalid_redirect_uri` for metadata naming a URI the redirect-URI policy refuses (the
    model's `clean` refuses it too, but DOT would answer the generic `invalid_client_metadata`). Malformed
    metadata is left to DOT's own errors."""
    try:
        metadata = json.loads(request.body)
    except ValueError:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("redirect_uris"), list):
        return None
    native = metadata.get("token_endpoint_auth_method") == "none"  # DOT makes exactly these clients public
    for uri in metadata["redirect_uris"]:
        if not isinstance(uri, str):
            return None
        try:
            check_redirect_uri(uri, native=native)
        except RedirectURIError as exc:
            return JsonResponse({"error": "invalid_redirect_uri", "error_description": exc.message}, status=400)
    return None


def registration_body_error(request: HttpRequest) -> JsonResponse | None:
    """`invalid_client_metadata` when the body is not a JSON object within the JSON limits
    (`authsec_site.lib.jsonbody`), so DOT's own parser only ever sees a body that is safe to decode."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        return oauth_error(400, "invalid_client_metadata", "The request body must be application/json.")
    try:
        data = parse_json(request.body)
    except JSONBodyError as exc:
        if exc.reason == "size":
            return oauth_error(413, "invalid_request", exc.message)
        return oauth_error(400, "invalid_client_metadata", exc.message)
    if not isinstance(data, dict):
        return oauth_error(400, "invalid_client_metadata", "The request body must be a JSON object.")
    return None


def _held_for_approval(client: Client, mode: str) -> bool:
    """A registration waits for an admin where the tenant holds registrations, and everywhere when the client
    asks for client credentials: such a client acts for itself, with no user's consent, and would get the
    tenant's RBAC scope names (oauth.scopes.token_principal), so only an admin lets one in."""
    return (
        mode == ProviderSettings.Registration.APPROVAL
        or client.authorization_grant_type == Client.GRANT_CLIENT_CREDENTIALS
    )


@method_decorator(csrf_exempt, name="dispatch")
class RegisterView(dot.DynamicClientRegistrationView):
    """Open, approval-held or closed registration per tenant; held clients are `pending` until approved."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().dispatch(request, *args, **kwargs)
        if request.method == "POST" and response.status_code != 201:
            metrics.dcr_registration("refused")  # the registered ones are counted with their status in `post`
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        mode = ProviderSettings.current().dynamic_registration
        if mode == ProviderSettings.Registration.CLOSED:
            return JsonResponse(
                {"error": "access_denied", "error_description": "Dynamic client registration is closed here."},
                status=403,
            )
        if (refused := registration_body_error(request)) is not None:
            return refused
        refused = _refused_redirect_uri(request)
        if refused is not None:
            return refused
        with transaction.atomic():  # never an active row left behind where registrations are held
            response = super().post(request, *args, **kwargs)
            if response.status_code != 201:
                return response
            body = json.loads(response.content)
            client = Client.objects.get(client_id=body["client_id"])
            if _held_for_approval(client, mode):
                client.status = Client.Status.PENDING
                client.save(update_fields=["status"])
            body["authsec_status"] = client.status
            metrics.dcr_registration(client.status)
            client.audit_registered("dcr")
        return JsonResponse(body, status=201)


@method_decorator(csrf_exempt, name="dispatch")
class RegistrationManagementView(dot.DynamicClientRegistrationManagementView):
    """RFC 7592 for dynamically registered clients (DOT's registration response links here). An update is
    refused while registration is closed, and sends a client back to `pending` when the tenant holds
    registrations for approval: an admin approved the old metadata, not the new."""

    def put(self, request: HttpRequest, client_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        mode = ProviderSettings.current().dynamic_registration
        if mode == ProviderSettings.Registration.CLOSED:
            return JsonResponse(
                {"error": "access_denied", "error_description": "Dynamic client registration is closed here."},
                status=403,
            )
        authenticated = self._authenticate_registration_request(request, client_id)
        if isinstance(authenticated, HttpResponse):
            return authenticated  # 401 first: metadata errors are only for the client's own registration
        if (refused := registration_body_error(request)) is not None:
            return refused
        refused = _refused_redirect_uri(request)
        if refused is not None:
            return refused
        response = super().put(request, client_id, *args, **kwargs)
        client = Client.objects.filter(client_id=client_id).first()
        if response.status_code != 200 or client is None:
            return response
        if _held_for_approval(client, mode):
            client.status = Client.Status.PENDING
            client.save(update_fields=["status"])
        audit.record(
            Actor("client", client.client_id, client.name),
            "oauth.client_updated",
            target=client,
            data={"client_id": client.client_id, "status": client.status, "redirect_uris": client.redirect_uris},
        )
        return response

    def delete(self, request: HttpRequest, client_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        authenticated = self._authenticate_registration_request(request, client_id)
        if isinstance(authenticated, HttpResponse):
            return authenticated
        client = authenticated.application
        client_services.delete_client(client, actor=Actor("client", client.client_id, client.name))
        return HttpResponse(status=204)
