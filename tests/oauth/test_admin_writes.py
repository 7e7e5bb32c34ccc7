"""The OAuth dashboard pages write only through the oauth service functions: clients, consents, signing keys,
provider settings. One event per change, the same whichever door (dashboard, code, RFC 7592) it came through."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client as HttpClient
from oauth2_provider.models import get_access_token_model

from audit.models import AuditEvent
from oauth.client_services import set_dynamic_registration
from oauth.keys import current_key
from oauth.models import Client, Consent, ProviderSettings, SigningKey

pytestmark = pytest.mark.django_db

SECRET = "s3cret-" + uuid.uuid4().hex


def _client_form(**overrides: str) -> dict[str, str]:
    form = {
        "client_id": f"dash-{uuid.uuid4().hex}",
        "name": "Dashboard client",
        "client_type": Client.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Client.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": "https://app.example.com/cb",
        "post_logout_redirect_uris": "",
        "allowed_origins": "",
        "client_secret": SECRET,
        "hash_client_secret": "on",
        "algorithm": Client.RS256_ALGORITHM,
        "status": Client.Status.ACTIVE,
        "registration_source": "manual",
        "description": "",
    }
    form.update(overrides)
    return form


def test_a_client_added_changed_and_deleted_in_the_dashboard(admin: HttpClient, in_acme) -> None:  # type: ignore[no-untyped-def]
    form = _client_form()
    response = admin.post("/t/acme/admin/oauth/client/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    client = Client.objects.get(client_id=form["client_id"])
    [created] = AuditEvent.objects.filter(action="oauth.client_created", target_id=str(client.pk))
    assert (created.actor_label, created.data["client_id"], created.data["before"]) == (
        "admin@acme.test",
        client.client_id,
        None,
    )
    assert created.data["after"]["redirect_uris"] == "https://app.example.com/cb"

    change = _client_form(client_id=client.client_id, client_secret=client.client_secret, description="Ours")
    response = admin.post(f"/t/acme/admin/oauth/client/{client.pk}/change/", change)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    [changed] = AuditEvent.objects.filter(action="oauth.client_changed", target_id=str(client.pk))
    assert changed.data["changes"] == {"description": {"before": "", "after": "Ours"}}

    response = admin.post(f"/t/acme/admin/oauth/client/{client.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Client.objects.filter(pk=client.pk).exists()
    [deleted] = AuditEvent.objects.filter(action="oauth.client_deleted", target_id=str(client.pk))
    assert (deleted.data["client_id"], deleted.data["after"]) == (client.client_id, None)
    for event in (created, changed, deleted):
        assert SECRET not in json.dumps(event.data) and client.client_secret not in json.dumps(event.data)
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


def test_the_consent_action_revokes_every_selected_consent_at_once(admin: HttpClient, code_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    consent = Consent.objects.get(user__email="alice@acme.test", client=clients.public)
    assert get_access_token_model().objects.filter(user__email="alice@acme.test").exists()
    page = admin.post("/t/acme/admin/oauth/consent/", {"action": "revoke", "_selected_action": [consent.pk]})
    assert page.status_code == 302
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    assert not get_access_token_model().objects.filter(user__email="alice@acme.test").exists()
    # Only alice's: live-server tests elsewhere in the run (the account page's) commit revokes of their own users.
    alices = AuditEvent.objects.filter(action="oauth.consent_revoked", data__user="alice@acme.test")
    [event] = alices
    assert (event.actor_label, event.data) == (
        "admin@acme.test",
        {"client_id": clients.public.client_id, "user": "alice@acme.test"},
    )
    # A second revoke of the same consent changes nothing.
    admin.post("/t/acme/admin/oauth/consent/", {"action": "revoke", "_selected_action": [consent.pk]})
    assert alices.count() == 1


def test_consents_and_signing_keys_are_read_only_pages(admin: HttpClient, code_tokens, clients) -> None:  # type: ignore[no-untyped-def]
    consent = Consent.objects.get(user__email="alice@acme.test", client=clients.public)
    url = f"/t/acme/admin/oauth/consent/{consent.pk}/"
    assert admin.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert Consent.objects.filter(pk=consent.pk).exists()
    key = current_key()
    assert admin.post(f"/t/acme/admin/oauth/signingkey/{key.pk}/change/", {}).status_code == 403


def test_rotate_now_makes_a_new_key_named_after_the_admin(admin: HttpClient, in_acme) -> None:  # type: ignore[no-untyped-def]
    old = current_key()
    response = admin.post("/t/acme/admin/oauth/signingkey/", {"action": "rotate_now", "_selected_action": [old.pk]})
    assert response.status_code == 302
    new = SigningKey.objects.get(retired_at__isnull=True)
    assert new.kid != old.kid
    [event] = AuditEvent.objects.filter(action="oauth.key_rotated", target_id=str(new.pk))
    assert (event.actor_label, event.data) == ("admin@acme.test", {"kid": new.kid, "retired": [old.kid]})


def test_provider_settings_have_one_event_whichever_door(admin: HttpClient, in_acme) -> None:  # type: ignore[no-untyped-def]
    settings = ProviderSettings.current()
    set_dynamic_registration(actor="tests", mode=ProviderSettings.Registration.CLOSED)
    response = admin.post(
        f"/t/acme/admin/oauth/providersettings/{settings.pk}/change/",
        {"dynamic_registration": ProviderSettings.Registration.APPROVAL, "allow_cimd": "on"},
    )
    assert response.status_code == 302
    assert ProviderSettings.current().dynamic_registration == ProviderSettings.Registration.APPROVAL
    code, dashboard = AuditEvent.objects.filter(action="oauth.provider_settings_changed").order_by("seq")
    assert code.actor_label == "tests" and dashboard.actor_label == "admin@acme.test"
    assert code.data["changes"] == {"dynamic_registration": {"before": "approval", "after": "closed"}}
    assert dashboard.data["changes"] == {"dynamic_registration": {"before": "closed", "after": "approval"}}
    # One row: the dashboard offers no second one.
    assert admin.get("/t/acme/admin/oauth/providersettings/add/").status_code == 403
