"""What the services app's modules share, below all of them: the credential key each service type returns as
its token, and the error a rotation raises. `services.services`, `rotators` and `sdk` import it, never each
other's names back, so the app's modules form no cycle."""

from __future__ import annotations

from services.models import Service

# The one credential key of each type that `get_service_token` returns and a generated-secret rotation replaces.
PRIMARY_KEY: dict[str, str] = {
    Service.ServiceType.API_KEY: "api_key",
    Service.ServiceType.BEARER_TOKEN: "access_token",
    Service.ServiceType.BASIC_AUTH: "password",
    Service.ServiceType.OAUTH2: "access_token",
    Service.ServiceType.DATABASE: "password",
}


class RotationError(Exception):
    """A rotator could not produce a new secret; the message is safe to show (no secret in it)."""
