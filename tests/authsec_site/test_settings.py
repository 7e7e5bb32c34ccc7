"""With DEBUG off, start-up refuses to run without the required settings and names what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import django; django.setup(); from django.conf import settings; print(settings.AUTHSEC_PUBLIC_URL)"
SETTINGS = ROOT / "authsec_site/settings.py"
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "VAULT_ADDR", "AUTHSEC_PUBLIC_URL")


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in REQUIRED + ("VAULT_TOKEN", "DEBUG")}
    base["DJANGO_SETTINGS_MODULE"] = "authsec_site.settings"
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True)


def test_production_start_names_every_missing_setting() -> None:
    result = _start({"DEBUG": "0"})
    assert result.returncode != 0
    assert (
        "missing required setting(s): SECRET_KEY, DATABASE_URL, REDIS_URL, VAULT_ADDR, AUTHSEC_PUBLIC_URL, VAULT_TOKEN"
        in result.stderr
    )
    assert "ImproperlyConfigured" in result.stderr


def test_production_start_succeeds_with_everything_set() -> None:
    result = _start(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u@db:5432/authsec",
            "REDIS_URL": "redis://cache:6379/0",
            "VAULT_ADDR": "https://vault:8200",
            "VAULT_TOKEN": "t",
            "AUTHSEC_PUBLIC_URL": "https://authsec.example.com",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://authsec.example.com"


def test_production_refuses_plain_http_public_url() -> None:
    result = _start(
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u@db/authsec",
            "REDIS_URL": "redis://c",
            "VAULT_ADDR": "https://vault:8200",
            "VAULT_TOKEN": "t",
            "AUTHSEC_PUBLIC_URL": "http://authsec.example.com",
        }
    )
    assert result.returncode != 0
    assert "must use https" in result.stderr


def test_malformed_boolean_is_a_clear_error() -> None:
    result = _start({"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_development_defaults_apply_with_debug_on() -> None:
    result = _start({"DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:8000"


def test_a_pending_mcp_login_may_not_wait_longer_than_ten_minutes() -> None:
    result = _start({"DEBUG": "1", "MCP_AUTH_PENDING_SECONDS": "601"})
    assert result.returncode != 0
    assert "MCP_AUTH_PENDING_SECONDS must be at most 600, got 601" in result.stderr
    assert _start({"DEBUG": "1", "MCP_AUTH_PENDING_SECONDS": "600"}).returncode == 0


def test_production_refuses_the_development_redirect_uri_relaxation() -> None:
    production = {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://u@db/authsec",
        "REDIS_URL": "redis://c",
        "VAULT_ADDR": "https://vault:8200",
        "VAULT_TOKEN": "t",
        "AUTHSEC_PUBLIC_URL": "https://authsec.example.com",
    }
    refused = _start({**production, "OAUTH_ALLOW_INSECURE_REDIRECT_URIS": "1"})
    assert refused.returncode != 0
    assert "OAUTH_ALLOW_INSECURE_REDIRECT_URIS is for development only" in refused.stderr
    assert _start({**production, "DEBUG": "1", "OAUTH_ALLOW_INSECURE_REDIRECT_URIS": "1"}).returncode == 0


def test_start_refuses_a_trusted_proxy_that_is_not_an_address() -> None:
    result = _start({"DEBUG": "1", "TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"})
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or CIDR network" in result.stderr


def test_start_refuses_an_unknown_forwarded_header() -> None:
    result = _start({"DEBUG": "1", "FORWARDED_HEADER": "X-Real-IP"})
    assert result.returncode != 0
    assert 'FORWARDED_HEADER must be "X-Forwarded-For" or "Forwarded"' in result.stderr


def test_the_fast_test_hasher_is_refused_outside_a_test_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTHSEC_TEST_FAST_PASSWORD_HASHER (for the suite's live servers) cannot weaken a real deployment."""
    import runpy

    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("DEBUG", "1")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/test_authsec")
    monkeypatch.delenv("AUTHSEC_TEST_FAST_PASSWORD_HASHER", raising=False)
    assert runpy.run_path(str(SETTINGS))["PASSWORD_HASHERS"][0].endswith(".PBKDF2PasswordHasher")
    monkeypatch.setenv("AUTHSEC_TEST_FAST_PASSWORD_HASHER", "1")
    fast = runpy.run_path(str(SETTINGS))["PASSWORD_HASHERS"]
    assert fast[0] == "django.contrib.auth.hashers.MD5PasswordHasher" and fast[1].endswith(".PBKDF2PasswordHasher")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/authsec")
    with pytest.raises(ImproperlyConfigured, match="is for the test suite only"):
        runpy.run_path(str(SETTINGS))


def test_forwarded_proto_is_not_trusted_without_trusted_proxies() -> None:
    result = _start({"DEBUG": "1", "TRUST_X_FORWARDED_PROTO": "1", "TRUSTED_PROXIES": ""})
    assert result.returncode != 0
    assert "TRUST_X_FORWARDED_PROTO=1 needs TRUSTED_PROXIES" in result.stderr
    trusted = _start({"DEBUG": "1", "TRUST_X_FORWARDED_PROTO": "1", "TRUSTED_PROXIES": "10.0.0.0/8"})
    assert trusted.returncode == 0, trusted.stderr
