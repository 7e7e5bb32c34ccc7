"""Pluggable rotators: each turns a service's current credentials into the next ones.

A rotator's `rotate` returns the complete new secret (it may keep keys it does not change) and must not
write anywhere itself: `services.services.rotate_service` writes the result to Vault with check-and-set and
then moves the row. `after_commit` runs once the new version is current (e.g. to revoke an old lease).
Register another kind with `register_rotator`.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
from typing import Any, Protocol

from django.conf import settings
from django.db import connection

from authsec_site.lib import outbound, vault
from services.credentials import PRIMARY_KEY, RotationError
from services.models import Service

logger = logging.getLogger(__name__)

ALPHABETS = {
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "printable": string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~",
}


class Rotator(Protocol):
    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]: ...

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None: ...


class GeneratedSecretRotator:
    """A fresh random value for the service's primary key; length and alphabet come from `rotation_config`."""

    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]:
        config = service.rotation_config or {}
        length = config.get("length", 40)
        if not isinstance(length, int) or not 16 <= length <= 4096:
            raise RotationError("rotation_config.length must be a whole number between 16 and 4096.")
        alphabet = config.get("alphabet", "alphanumeric")
        chars = ALPHABETS.get(alphabet, alphabet if isinstance(alphabet, str) else "")
        if len(set(chars)) < 16:
            names = ", ".join(ALPHABETS)
            raise RotationError(f"rotation_config.alphabet must be one of {names} or at least 16 distinct characters.")
        value = "".join(secrets.choice(chars) for _ in range(length))
        return {**current, PRIMARY_KEY[service.service_type]: value}

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


class OAuth2RefreshRotator:
    """Refresh-token grant at `rotation_config.token_url`: a new access token, and the new refresh token when
    the provider rotates it (else the old one is kept). Client authentication as the stored credentials say."""

    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]:
        config = service.rotation_config or {}
        token_url = config.get("token_url", "")
        if not isinstance(token_url, str) or not token_url.startswith(("https://", "http://")):
            raise RotationError("rotation_config.token_url must be the provider's token endpoint URL.")
        refresh_token = current.get("refresh_token")
        if not refresh_token:
            raise RotationError("No refresh token is stored for this service; replace the secret first.")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if config.get("scope"):
            form["scope"] = str(config["scope"])
        headers = {"Accept": "application/json"}
        client_id, client_secret = current.get("client_id", ""), current.get("client_secret", "")
        if client_id and client_secret:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        elif client_id:
            form["client_id"] = client_id
        try:  # an admin-given URL: through the guarded door (public addresses only, no redirects)
            response = outbound.fetch(
                token_url, method="POST", data=form, headers=headers, timeout=settings.SERVICES_HTTP_TIMEOUT
            )
        except outbound.FetchError as exc:
            raise RotationError(f"The token endpoint could not be reached ({exc.reason}).") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error", "") if isinstance(body, dict) else ""
            code = str(error)[:60] if isinstance(error, str) and error.replace("_", "").isalnum() else "no token"
            raise RotationError(f"The token endpoint answered {response.status} ({code}).")
        new = {**current, "access_token": str(body["access_token"])}
        if body.get("refresh_token"):
            new["refresh_token"] = str(body["refresh_token"])
        return new

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


class DatabaseRotator:
    """PostgreSQL through Vault's database engine: leases new credentials for `rotation_config.role` with the
    tenant's own Vault token; the previous lease is revoked once the new version is current."""

    def rotate(self, service: Service, current: dict[str, Any]) -> dict[str, Any]:
        role = (service.rotation_config or {}).get("role", "")
        if not isinstance(role, str) or not role:
            raise RotationError("rotation_config.role must name the Vault database role.")
        creds = vault.database_credentials(connection.schema_name, role)
        return {"username": creds["username"], "password": creds["password"], "lease_id": creds["lease_id"]}

    def after_commit(self, service: Service, old: dict[str, Any], new: dict[str, Any]) -> None:
        lease = old.get("lease_id")
        if lease and lease != new.get("lease_id"):
            try:
                vault.revoke_lease(connection.schema_name, lease)
            except vault.VaultError as exc:  # it still expires at its TTL
                logger.warning("Could not revoke the previous lease of service %s: %s", service.pk, exc)


_ROTATORS: dict[str, Rotator] = {
    Service.RotationKind.GENERATED: GeneratedSecretRotator(),
    Service.RotationKind.OAUTH2_REFRESH: OAuth2RefreshRotator(),
    Service.RotationKind.DATABASE: DatabaseRotator(),
}


def get_rotator(kind: str) -> Rotator:
    rotator = _ROTATORS.get(kind)
    if rotator is None:
        raise RotationError(f"No rotator is registered for rotation kind {kind!r}.")
    return rotator


def register_rotator(kind: str, rotator: Rotator | None) -> Rotator | None:
    """Install (or with None remove) the rotator of `kind`; returns the one it replaces."""
    previous = _ROTATORS.pop(kind, None)
    if rotator is not None:
        _ROTATORS[kind] = rotator
    return previous
