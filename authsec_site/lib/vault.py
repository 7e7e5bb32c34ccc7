"""The one door to Vault (OpenBao): the only module that imports hvac.

Everything else asks this module for secrets by tenant and name. Failures surface as `VaultError`, whose
message says what went wrong (unreachable, sealed, permission denied, not found) and never contains a
token or a secret value.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import hvac
import requests
from django.conf import settings
from hvac import exceptions as hvac_exc

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")  # no leading dot


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
    """The process-wide authenticated client (created on first use, re-created with `reset_client`)."""
    global _client
    with _lock:
        if _client is None:
            _client = _new_client()
        return _client


def reset_client() -> None:
    global _client
    with _lock:
        _client = None


def _guard(what: str, call: Callable[[], T]) -> T:
    """Run one Vault call, translating every failure into a `VaultError` with a clear message."""
    addr = settings.VAULT_ADDR
    try:
        return call()
    except requests.exceptions.ConnectionError:
        raise VaultError(f"Vault at {addr} is unreachable (could not {what}).", reason="unreachable") from None
    except requests.exceptions.Timeout:
        raise VaultError(
            f"Vault at {addr} did not answer within {settings.VAULT_TIMEOUT}s (could not {what}).", reason="unreachable"
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


def tenant_path(schema_name: str, *parts: str) -> str:
    """The KV v2 path of a tenant's secret: ``<prefix>/tenants/<schema>/<parts…>`` (mount excluded).

    Each part is checked, so no caller can climb out of its tenant's subtree with ``..`` or ``/``.
    """
    segments = [schema_name, *parts]
    for segment in segments:
        if not _SEGMENT.match(segment) or ".." in segment:
            raise VaultError(f"Invalid Vault path segment {segment!r}.", reason="invalid")
    return "/".join([settings.VAULT_KV_PREFIX, "tenants", *segments])


def pki_mount(schema_name: str) -> str:
    """The mount path of a tenant's PKI secrets engine (its SPIFFE CA): ``<prefix>-pki-<schema>``."""
    if not _SEGMENT.match(schema_name) or "." in schema_name:
        raise VaultError(f"Invalid Vault path segment {schema_name!r}.", reason="invalid")
    return f"{settings.VAULT_KV_PREFIX}-pki-{schema_name}"


def kv_write(path: str, data: Mapping[str, Any]) -> int:
    """Write a new version of the KV v2 secret at `path`; returns the new version number."""
    response = _guard(
        "write a secret",
        lambda: client().secrets.kv.v2.create_or_update_secret(
            path=path, secret=dict(data), mount_point=settings.VAULT_KV_MOUNT
        ),
    )
    return int(response["data"]["version"])


def kv_read(path: str, version: int | None = None) -> tuple[dict[str, Any], int]:
    """Read a KV v2 secret (latest or a given version); returns (data, version)."""
    response = _guard(
        "read a secret",
        lambda: client().secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point=settings.VAULT_KV_MOUNT, raise_on_deleted_version=True
        ),
    )
    return dict(response["data"]["data"]), int(response["data"]["metadata"]["version"])


def kv_delete_all(path: str) -> None:
    """Delete every version and the metadata of a KV v2 secret."""
    _guard(
        "delete a secret",
        lambda: client().secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=settings.VAULT_KV_MOUNT),
    )


def health() -> dict[str, Any]:
    """Vault's health (initialized, sealed, version); raises `VaultError` when it cannot be reached."""
    status = _guard("read its health", lambda: client().sys.read_health_status(method="GET"))
    body = status.json() if hasattr(status, "json") else status
    if body.get("sealed"):
        raise VaultError(f"Vault at {settings.VAULT_ADDR} is sealed.", reason="sealed")
    return {"initialized": body.get("initialized"), "sealed": body.get("sealed"), "version": body.get("version")}


def token_is_valid() -> bool:
    """True when the configured credentials are accepted (a lookup-self succeeds)."""
    _guard("look up its own token", lambda: client().auth.token.lookup_self())
    return True
