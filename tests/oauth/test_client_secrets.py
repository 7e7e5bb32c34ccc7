"""Client secrets are stored hashed (a cheap salted hash: they are random 256-bit values) and still verify."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

pytestmark = pytest.mark.django_db


def test_client_secret_is_hashed_with_the_client_secret_hasher(demo_users, clients) -> None:  # type: ignore[no-untyped-def]
    clients.machine.refresh_from_db()
    assert clients.machine.client_secret.startswith("authsec_client_secret$1$")
    assert clients.machine_secret not in clients.machine.client_secret
    ok = HttpClient().post(
        "/t/acme/oauth/token",
        {
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": clients.machine.client_id,
            "client_secret": clients.machine_secret,
        },
    )
    assert ok.status_code == 200
    bad = HttpClient().post(
        "/t/acme/oauth/token",
        {
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": clients.machine.client_id,
            "client_secret": clients.machine_secret + "x",
        },
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
