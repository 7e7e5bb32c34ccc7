"""Second factors in tests: sign in at the tenant login page, enroll TOTP through the security page, and compute
the codes an authenticator app would show (RFC 6238, django-otp's implementation of the algorithm)."""

from __future__ import annotations

import re
import time

from django.test import Client
from django_otp.oath import TOTP

from tests.support.accounts import FACTORY_PASSWORD

RECOVERY_CODE = re.compile(r'class="recovery-code">([A-Z2-7-]+)<')


def sign_in(slug: str, email: str, password: str = FACTORY_PASSWORD) -> Client:
    """A browser-like client signed in at /t/<slug>/accounts/login/ (the end users' login page)."""
    client = Client()
    response = client.post(f"/t/{slug}/accounts/login/", {"username": email, "password": password})
    assert response.status_code == 302, f"login of {email} at {slug} failed"
    return client


def code(key_hex: str, steps: int = 0) -> str:
    """The 6-digit TOTP code of `key_hex`, `steps` time steps (30 s) from now."""
    totp = TOTP(bytes.fromhex(key_hex))
    totp.time = time.time() + 30 * steps
    return f"{totp.token():06d}"


def enroll_totp(client: Client, slug: str) -> tuple[str, list[str]]:
    """Set up TOTP on the security page as a user would: start, read the key, confirm with a code. Returns the
    key and the recovery codes the page showed once."""
    page = f"/t/{slug}/account/security/"
    assert client.post(page, {"action": "totp_start"}).status_code == 302
    shown = client.get(page)
    assert shown.status_code == 200 and b"<svg" in shown.content  # the QR code, inline
    key = client.session["accounts.mfa_totp_pending"]["key"]
    confirmed = client.post(page, {"action": "totp_confirm", "code": code(key)})
    assert confirmed.status_code == 302, confirmed.content[:500]
    codes = RECOVERY_CODE.findall(client.get(page).content.decode())
    return key, codes
