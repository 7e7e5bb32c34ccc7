"""seed_demo's "GitHub API Integration": created once in acme with a placeholder token, readable with scope read."""

from __future__ import annotations

import pytest

from services.demo import GITHUB, PLACEHOLDER_TOKEN, seed_services
from services.models import Service
from services.sdk import ServiceAccessDenied, read_credentials
from tests.support.services import session_for, vault_value

pytestmark = pytest.mark.django_db


def test_seed_creates_the_github_service_readable_with_scope_read(demo_users) -> None:  # type: ignore[no-untyped-def]
    service = seed_services("acme")
    assert service is not None and service.name == GITHUB
    assert service.scopes == ["read"] and service.service_type == "bearer_token"
    assert service.base_url == "https://api.github.com"
    assert vault_value(service) == ({"access_token": PLACEHOLDER_TOKEN}, 1)
    assert read_credentials(session_for(demo_users["bob"]), GITHUB)["credentials"]["access_token"] == PLACEHOLDER_TOKEN
    with pytest.raises(ServiceAccessDenied):
        read_credentials(session_for(demo_users["carol"]), GITHUB)


def test_seed_is_idempotent_and_keeps_an_admins_changes(demo_users) -> None:  # type: ignore[no-untyped-def]
    service = seed_services("acme")
    Service.objects.filter(pk=service.pk).update(description="edited by an admin")
    again = seed_services("acme")
    assert again.pk == service.pk and again.description == "edited by an admin"
    assert again.vault_version == 1 and Service.objects.filter(name=GITHUB).count() == 1


def test_seed_makes_nothing_in_globex(globex) -> None:  # type: ignore[no-untyped-def]
    assert seed_services("globex") is None
