"""The principal of a token (`oauth.scopes.token_principal`): the scopes it carries count as far as its holder holds
them now, through `rbac.principal`'s one narrowing; `admin` is held by tenant staff outside RBAC, so it counts for
the token (the management API) but never satisfies an RBAC requirement."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditEvent
from oauth.scopes import granted_scopes, token_principal
from rbac.engine import Requirement
from rbac.principal import authorize

pytestmark = pytest.mark.django_db

ASKED = ["openid", "email", "admin", "read", "write", "offline_access"]


def test_staff_holds_admin_for_the_token_but_not_for_rbac(demo_users) -> None:  # type: ignore[no-untyped-def]
    admin = User.objects.get(email="admin@acme.test")  # tenant superuser, no RBAC role
    principal = token_principal(admin, ASKED)
    assert principal.in_force(ASKED) == ["openid", "email", "admin", "offline_access"]
    assert granted_scopes(ASKED, admin) == principal.in_force(ASKED)
    assert principal.call_grants.scopes == frozenset()
    assert not authorize(principal, Requirement.of(scopes=["admin"]))


def test_an_rbac_admin_scope_counts_for_both(demo_users) -> None:  # type: ignore[no-untyped-def]
    dave = User.objects.get(email="dave@acme.test")  # role superuser: RBAC scope admin, not tenant staff
    principal = token_principal(dave, ["openid", "admin", "write"])
    assert principal.in_force(["openid", "admin", "write"]) == ["openid", "admin"]  # write is not his
    assert authorize(principal, Requirement.of(scopes=["admin"])).allowed
    assert authorize(token_principal(dave, ["openid"]), Requirement.of(scopes=["admin"])).step_up == ("admin", "openid")


def test_a_scope_outside_the_users_grants_is_dropped(demo_users) -> None:  # type: ignore[no-untyped-def]
    bob = User.objects.get(email="bob@acme.test")  # analyst: scope read only
    assert token_principal(bob, ASKED).in_force(ASKED) == ["openid", "email", "read", "offline_access"]
    assert token_principal(bob, []).in_force([]) == []


def test_an_inactive_user_keeps_only_the_oidc_scopes(demo_users) -> None:  # type: ignore[no-untyped-def]
    alice = User.objects.get(email="alice@acme.test")
    alice.is_active = False
    alice.save()
    assert token_principal(alice, ASKED).in_force(ASKED) == ["openid", "email", "offline_access"]


def test_a_client_acting_for_itself_holds_the_tenant_scopes_but_never_admin(demo_users) -> None:  # type: ignore[no-untyped-def]
    principal = token_principal(None, ASKED, client_id="machine")
    assert principal.in_force(ASKED) == ["openid", "email", "read", "write", "offline_access"]
    assert principal.audit_actor.type == AuditEvent.ActorType.CLIENT and principal.audit_actor.id == "machine"
    assert not authorize(principal, Requirement.of(scopes=["read"]))  # its scopes are not RBAC grants
