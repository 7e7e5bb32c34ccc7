"""Clients that register themselves through a Client ID Metadata Document (CIMD) are held like dynamic
registrations: active at once only where the tenant's registration is `open`, pending otherwise, and sent back to
pending when a re-fetched document changes what an admin approved.

The document's web server cannot run here (a CIMD client_id is a public https URL): `Document` stands for it at
the fetcher's boundary and answers what the server would (the fetcher's own URL, address, size and time rules
are tested in tests/oauth/test_negative_endpoints.py and tests/authsec_site/test_outbound.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings

from audit.models import AuditEvent
from oauth.models import Client, ProviderSettings
from oauth.registration import TenantCIMDFetcher
from tests.support.oauth import REDIRECT, authorize_params, login, pkce

pytestmark = pytest.mark.django_db
CLIENT_ID = "https://tools.example.org/oauth/client.json"
WAITING = "Doc Tool is waiting for approval by an administrator of Acme Corp."


class Document(TenantCIMDFetcher):
    """The document server's answer for CLIENT_ID (the rest of the fetcher, DOT's URL rules, still runs)."""

    served: ClassVar[dict[str, Any]] = {}
    fetches: ClassVar[int] = 0

    def fetch(self, client_id: str) -> Any:
        type(self).fetches += 1
        assert client_id == CLIENT_ID
        return dict(type(self).served), 300


@pytest.fixture
def document(monkeypatch: pytest.MonkeyPatch) -> type[Document]:
    Document.served = {
        "client_id": CLIENT_ID,
        "client_name": "Doc Tool",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
    }
    Document.fetches = 0
    monkeypatch.setattr(oauth2_settings, "CIMD_METADATA_FETCHER", Document)
    return Document


def mode(value: str) -> None:
    ProviderSettings.objects.update_or_create(pk=1, defaults={"dynamic_registration": value, "allow_cimd": True})


def authorize(browser: HttpClient) -> Any:
    _verifier, challenge = pkce()
    params = authorize_params(Client(client_id=CLIENT_ID), challenge, resource=None)
    return browser.get("/t/acme/oauth/authorize?" + urlencode(params))


@pytest.mark.parametrize("setting", ["approval", "closed"])
def test_a_cimd_client_is_held_on_first_sight_unless_registration_is_open(demo_users, document, setting: str) -> None:  # type: ignore[no-untyped-def]
    mode(setting)
    response = authorize(HttpClient())
    assert response.status_code == 403 and not response.has_header("Location")
    assert f'<p id="client-refusal">{WAITING}</p>' in response.content.decode()
    client = Client.objects.get(client_id=CLIENT_ID)
    assert client.status == Client.Status.PENDING and client.registration_source == "cimd"
    event = AuditEvent.objects.filter(action="oauth.client_registered", data__client_id=CLIENT_ID).get()
    assert event.data["status"] == "pending" and event.data["source"] == "cimd" and event.actor_type == "client"

    # Signed in, the user gets the same page, and no code is issued for a client nobody approved.
    again = authorize(login("alice@acme.test"))
    assert again.status_code == 403 and WAITING in again.content.decode()
    assert document.fetches == 1  # the document is fetched once, not on every visit


def test_in_open_mode_a_cimd_client_signs_in_at_once_and_an_approved_one_keeps_working(demo_users, document) -> None:  # type: ignore[no-untyped-def]
    mode("open")
    response = authorize(login("alice@acme.test"))
    if response.status_code == 200:  # the consent page
        assert "Doc Tool" in response.content.decode()
    else:
        assert response.status_code == 302
        assert parse_qs(urlsplit(response["Location"]).query)["code"]
    assert Client.objects.get(client_id=CLIENT_ID).status == Client.Status.ACTIVE


def test_a_refetched_document_that_changes_what_was_approved_goes_back_to_pending(demo_users, document) -> None:  # type: ignore[no-untyped-def]
    mode("approval")
    authorize(HttpClient())
    client = Client.objects.get(client_id=CLIENT_ID)
    client.status = Client.Status.ACTIVE  # an admin approved this document
    client.save(update_fields=["status"])

    # Same document after its cache expired: still approved.
    Client.objects.filter(pk=client.pk).update(cimd_expires_at=timezone.now() - timedelta(seconds=1))
    authorize(login("alice@acme.test"))
    assert Client.objects.get(pk=client.pk).status == Client.Status.ACTIVE

    # The document now sends codes elsewhere: the approval does not carry over.
    document.served["redirect_uris"] = ["http://127.0.0.1:9999/elsewhere"]
    Client.objects.filter(pk=client.pk).update(cimd_expires_at=timezone.now() - timedelta(seconds=1))
    response = authorize(login("alice@acme.test"))
    assert response.status_code != 302 or "code=" not in response.get("Location", "")
    client.refresh_from_db()
    assert client.status == Client.Status.PENDING and client.redirect_uris == "http://127.0.0.1:9999/elsewhere"
    follow_up = authorize(HttpClient())
    assert follow_up.status_code == 403 and WAITING in follow_up.content.decode()
