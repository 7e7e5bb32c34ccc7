"""OAuth endpoints of a tenant, under /t/<tenant>/oauth/ (exact paths: clients do not follow slash redirects).

Django-oauth-toolkit's views keep their ``oauth2_provider:`` URL names so its internals can reverse them.
"""

from django.urls import path
from oauth2_provider import views as dot

from oauth import resource_server_views, views

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize", views.AuthorizeView.as_view(), name="authorize"),
    path("token", views.TokenView.as_view(), name="token"),
    path("revoke", dot.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect", views.IntrospectView.as_view(), name="introspect"),
    path("userinfo", dot.UserInfoView.as_view(), name="user-info"),
    path("jwks", views.jwks, name="jwks-info"),
    path("register", views.RegisterView.as_view(), name="dcr-register"),
    # RFC 7592 client configuration endpoint: DOT's registration response links to it.
    path("register/<str:client_id>", views.RegistrationManagementView.as_view(), name="dcr-register-management"),
    # The published SDK's runtime API (authsec_sdk.runtime): policy fetch and tool-inventory push.
    path(
        "authsec/resource-servers/<str:resource_server_id>/sdk-policy",
        resource_server_views.sdk_policy,
        name="resource-server-sdk-policy",
    ),
    path(
        "authsec/resource-servers/<str:resource_server_id>/sdk-manifest",
        resource_server_views.sdk_manifest,
        name="resource-server-sdk-manifest",
    ),
    path(".well-known/oauth-authorization-server", views.authorization_server_metadata, name="oauth-server-metadata"),
    path(".well-known/openid-configuration", views.openid_configuration, name="oidc-connect-discovery-info"),
]
