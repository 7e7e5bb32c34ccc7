"""The principal (`rbac.principal`): a token's scopes narrow what its user may do, never widen it, and
`authorize` gives one call its decision with the real engine, run once when it allows.

Pure unit tests: a principal is grants plus token scopes, so no database is needed.
"""

from __future__ import annotations

import pytest

from rbac.engine import ANONYMOUS, NO_POLICY, Grants, Requirement, decide
from rbac.principal import Principal, authorize, visible

# alice of the demo data: roles admin and developer, scopes read and write, resources projects and analytics.
ALICE = Grants.of(
    roles=["admin", "developer"],
    groups=["engineering"],
    scopes=["read", "write"],
    resources=["projects", "analytics"],
    permissions=["projects:read"],
)
WRITE = Requirement.of(scopes=["write"])
READ = Requirement.of(scopes=["read"])
ADMIN_SCOPE = Requirement.of(scopes=["admin"])


def alice(token_scopes: list[str] | None = None, **fields: object) -> Principal:
    scopes = None if token_scopes is None else frozenset(token_scopes)
    return Principal(7, "alice@acme.test", "acme", ALICE, token_scopes=scopes, **fields)  # type: ignore[arg-type]


# --- No token scopes -------------------------------------------------------------------------------------------


def test_without_a_token_the_users_grants_decide_unchanged() -> None:
    principal = alice()
    assert not principal.limited
    assert principal.call_grants is ALICE
    assert principal.scopes == {"read", "write"}
    assert authorize(principal, WRITE).decision == decide(ALICE, WRITE)
    assert authorize(principal, WRITE).step_up == ()


def test_a_token_with_no_scopes_keeps_no_rbac_scope_and_asks_for_the_one_needed() -> None:
    principal = alice([])
    assert principal.limited
    assert principal.call_grants.scopes == frozenset()
    assert principal.call_grants.roles == ALICE.roles  # only scopes narrow
    assert principal.scopes == frozenset()
    denied = authorize(principal, WRITE)
    assert not denied.allowed
    assert denied.reason == "denied: needs any of scopes [write]"
    assert denied.step_up == ("write",)


def test_a_token_holding_every_scope_of_its_user_is_not_limited() -> None:
    principal = alice(["openid", "email", "read", "write"])
    assert not principal.limited
    assert principal.call_grants is ALICE
    assert authorize(principal, WRITE).allowed


# --- Subset ----------------------------------------------------------------------------------------------------


def test_a_subset_token_allows_what_it_carries_and_steps_up_for_the_rest() -> None:
    principal = alice(["openid", "email", "read"])
    assert principal.limited
    assert principal.call_grants.scopes == {"read"}
    allowed = authorize(principal, READ)
    assert allowed.allowed and allowed.reason == "allowed: has scope read" and allowed.step_up == ()
    step_up = authorize(principal, WRITE)
    assert not step_up.allowed
    assert step_up.reason == "denied: needs any of scopes [write]"
    assert step_up.step_up == ("email", "openid", "read", "write")  # the requirement's scopes plus the token's


def test_the_user_info_of_a_subset_token_lists_the_narrowed_scopes() -> None:
    info = alice(["read"]).user_info()
    assert info["scopes"] == ["read"]
    assert info["roles"] == ["admin", "developer"]
    assert (info["user_id"], info["email"], info["tenant_id"]) == (7, "alice@acme.test", "acme")
    assert alice().user_info()["scopes"] == ["read", "write"]


def test_user_info_is_a_fresh_copy() -> None:
    principal = alice(["read"])
    principal.user_info()["scopes"].append("write")
    assert principal.user_info()["scopes"] == ["read"]


# --- A scope outside the grants --------------------------------------------------------------------------------


def test_a_token_scope_the_user_does_not_hold_never_widens() -> None:
    principal = alice(["read", "write", "admin"])
    assert not principal.limited  # it carries every scope alice holds
    assert principal.scopes == {"read", "write"}
    assert "admin" not in principal.call_grants.scopes
    denied = authorize(principal, ADMIN_SCOPE)
    assert not denied.allowed and denied.step_up == ()  # no step-up can help: alice lacks it herself
    assert principal.in_force(["admin", "write", "read", "write"]) == ["write", "read"]


def test_a_denial_the_user_shares_is_hidden_and_explained_by_the_users_grants() -> None:
    """deploy_production-like: alice lacks the production resource, so the token's missing `write` does not
    matter; the reason is her own (no scope listed as missing) and there is no step-up."""
    requirement = Requirement.of(roles=["deployer"], scopes=["write"], resources=["production"], require_all=True)
    denied = authorize(alice(["read"]), requirement)
    assert not denied.allowed and denied.step_up == ()
    assert denied.reason == "denied: missing one of roles [deployer]; all of resources [production]"


# --- The admin scope -------------------------------------------------------------------------------------------


def test_the_staff_admin_scope_counts_for_the_token_but_never_for_an_rbac_requirement() -> None:
    """`admin` given to tenant staff by oauth (an extra scope) is in force for the management API, yet a tool that
    needs the RBAC scope `admin` stays denied, with no step-up."""
    principal = alice(["openid", "admin", "read"], extra_scopes=frozenset({"openid", "admin"}))
    assert principal.scopes == {"openid", "admin", "read"}
    assert principal.in_force(["openid", "admin", "read", "profile"]) == ["openid", "admin", "read"]
    assert principal.call_grants.scopes == {"read"}
    denied = authorize(principal, ADMIN_SCOPE)
    assert not denied.allowed and denied.step_up == ()


def test_an_rbac_admin_scope_missing_from_the_token_is_a_step_up() -> None:
    dave = Grants.of(roles=["superuser"], scopes=["admin"], resources=["production", "sensitive-data"])
    with_token = Principal(9, "dave@acme.test", "acme", dave, token_scopes=frozenset({"openid", "admin"}))
    assert authorize(with_token, ADMIN_SCOPE).allowed
    narrow = Principal(9, "dave@acme.test", "acme", dave, token_scopes=frozenset({"openid"}))
    assert authorize(narrow, ADMIN_SCOPE).step_up == ("admin", "openid")


# --- Roles and resources ---------------------------------------------------------------------------------------


def test_scope_narrowing_leaves_roles_groups_resources_and_permissions_alone() -> None:
    principal = alice([])
    for requirement in (
        Requirement.of(roles=["admin"]),
        Requirement.of(groups=["engineering"]),
        Requirement.of(resources=["projects", "analytics"], require_all=True),
        Requirement.of(permissions=["projects:read"]),
    ):
        assert authorize(principal, requirement).allowed, requirement


def test_require_all_with_a_scope_and_resources_steps_up_only_for_the_scope() -> None:
    """view_analytics of the demo: scope read AND resource analytics."""
    requirement = Requirement.of(scopes=["read"], resources=["analytics"], require_all=True)
    assert authorize(alice(["read"]), requirement).allowed
    step_up = authorize(alice(["write"]), requirement)
    assert step_up.reason == "denied: missing one of scopes [read]" and step_up.step_up == ("read", "write")
    missing_resource = Requirement.of(scopes=["read"], resources=["analytics", "production"], require_all=True)
    denied = authorize(alice(["read"]), missing_resource)
    assert denied.step_up == () and denied.reason == "denied: missing all of resources [production]"


def test_a_roles_requirement_is_not_met_by_a_token() -> None:
    denied = authorize(alice(["read", "write"]), Requirement.of(roles=["deployer"]))
    assert not denied.allowed and denied.step_up == ()


# --- Fail closed, listing, and how often the engine runs -------------------------------------------------------


@pytest.mark.parametrize("principal", [None, alice(), alice(["read"])])
def test_no_policy_and_anonymous_fail_closed(principal: Principal | None) -> None:
    assert authorize(principal, None).decision in (NO_POLICY, ANONYMOUS)
    assert not authorize(principal, None)
    assert authorize(None, Requirement.of()).decision == ANONYMOUS


def test_listing_uses_the_users_grants_so_a_narrow_token_still_sees_what_to_step_up_for() -> None:
    policies = {"create": WRITE, "read": READ, "admin": ADMIN_SCOPE, "nopolicy": None}
    assert visible(alice(["read"]), policies, ["admin", "read", "create", "nopolicy"]) == ["read", "create"]
    assert visible(None, policies, ["read", "create"]) == []


def test_an_allowed_call_runs_the_engine_once_and_a_denied_narrow_one_twice(decisions) -> None:  # type: ignore[no-untyped-def]
    narrow, plain = alice(["read"]), alice()
    with decisions.counting():
        authorize(narrow, READ)
    assert decisions.count == 1
    with decisions.counting():
        authorize(plain, WRITE)
        authorize(plain, ADMIN_SCOPE)
    assert decisions.count == 3
    with decisions.counting():
        authorize(narrow, WRITE)  # a step-up: the token's decision, then the user's to tell it from a denial
    assert decisions.count == 5
