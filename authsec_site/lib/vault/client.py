"""The platform's hvac client and the translation of every Vault failure into `VaultError`.

The only module of the project that builds an hvac client with the platform credential (VAULT_TOKEN or the
platform AppRole); tenant clients are built in `approle`. `VaultError` messages say what went wrong
(unreachable, sealed, permission denied, not found) and never contain a token or a secret value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import requests
from django.conf import settings
from hvac import exceptions as hvac_exc

from authsec_site.lib import tracing

T = TypeVar("T")


class VaultError(Exception):
    """Vault could not do what was asked. `reason` is one of: unreachable, sealed, denied, not_found, invalid, error."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


_lock = threading.Lock()
_client: hvac.Client | None = None


def _new_client() -> hvac.Client:
    client = hvac.Client(
        url=settings.VAULT_ADDR,
        timeout=settings.VAULT_TIMEOUT,
        verify=settings.VAULT_CACERT or True,
    )
    if settings.VAULT_TOKEN:
        client.token = settings.VAULT_TOKEN
    elif settings.VAULT_ROLE_ID and settings.VAULT_SECRET_ID:
        _guard(
            "log in with AppRole",
            lambda: client.auth.approle.login(
                role_id=settings.VAULT_ROLE_ID,
                secret_id=settings.VAULT_SECRET_ID,
                mount_point=settings.VAULT_APPROLE_MOUNT,
            ),
        )
    else:
        raise VaultError(
            "No Vault credentials configured: set VAULT_TOKEN or VAULT_ROLE_ID + VAULT_SECRET_ID.", reason="invalid"
        )
    return client


def client() -> hvac.Client:
    """The process-wide authenticated client (created on first use, re-created after `forget_platform_client`)."""
    global _client
    with _lock:
        if _client is None:
            _client = _new_client()
        return _client


def forget_platform_client() -> None:
    """Forget the platform client; the next `client()` builds and authenticates a new one."""
    global _client
    with _lock:
        _client = None


@tracing.traced(lambda what, *_, **__: f"vault {what}", attributes=lambda what, *_, **__: {"vault.operation": what})
def _guard(what: str, call: Callable[[], T], timeout: float | None = None) -> T:
    """Run one Vault call, translating every failure into a `VaultError` with a clear message (`timeout`: the
    call's own timeout, when it is not `VAULT_TIMEOUT`)."""
    addr = settings.VAULT_ADDR
    try:
        return call()
    except requests.exceptions.ConnectionError:
        raise VaultError(f"Vault at {addr} is unreachable (could not {what}).", reason="unreachable") from None
    except requests.exceptions.Timeout:
        raise VaultError(
            f"Vault at {addr} did not answer within {timeout or settings.VAULT_TIMEOUT}s (could not {what}).",
            reason="unreachable",
        ) from None
    except hvac_exc.VaultDown:
        raise VaultError(f"Vault at {addr} is sealed or in maintenance (could not {what}).", reason="sealed") from None
    except (hvac_exc.Forbidden, hvac_exc.Unauthorized):
        raise VaultError(
            f"Vault denied permission to {what}: check the token or AppRole policy.", reason="denied"
        ) from None
    except hvac_exc.InvalidPath:
        raise VaultError(f"Vault has nothing at the path needed to {what}.", reason="not_found") from None
    except hvac_exc.InvalidRequest as exc:
        raise VaultError(f"Vault rejected the request to {what}: {_errors(exc)}", reason="invalid") from None
    except hvac_exc.VaultError as exc:
        raise VaultError(f"Vault failed to {what}: {_errors(exc)}", reason="error") from None
    except requests.exceptions.RequestException as exc:
        raise VaultError(
            f"Vault at {addr} could not be reached to {what}: {type(exc).__name__}.", reason="unreachable"
        ) from None


def _errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    return "; ".join(str(e) for e in errors) if errors else type(exc).__name__


def health(timeout: float | None = None) -> dict[str, Any]:
    """Vault's health (initialized, sealed, version); raises `VaultError` when it cannot be reached.

    `timeout` (seconds) bounds this one request instead of `VAULT_TIMEOUT` (the dashboard home's check)."""

    def read() -> Any:
        if timeout is None:
            return client().sys.read_health_status(method="GET")
        return client().adapter.get("/v1/sys/health", raise_exception=False, timeout=timeout)

    status = _guard("read its health", read, timeout)
    body = status.json() if hasattr(status, "json") else status
    if body.get("sealed"):
        raise VaultError(f"Vault at {settings.VAULT_ADDR} is sealed.", reason="sealed")
    return {"initialized": body.get("initialized"), "sealed": body.get("sealed"), "version": body.get("version")}


def token_is_valid() -> bool:
    """True when the configured credentials are accepted (a lookup-self succeeds)."""
    _guard("look up its own token", lambda: client().auth.token.lookup_self())
    return True
