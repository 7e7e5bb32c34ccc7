"""OAuth bearer tokens for the management API: DOT's DRF authentication (token looked up by hash in this
tenant's schema; expired, revoked and other-resource tokens refused), plus the scope rule in
`rbac.api.permissions` (a bearer token must carry the `admin` scope)."""

from __future__ import annotations

from oauth2_provider.contrib.rest_framework import OAuth2Authentication

API_SCOPE = "admin"


class BearerTokenAuthentication(OAuth2Authentication):
    www_authenticate_realm = "authsec-api"
