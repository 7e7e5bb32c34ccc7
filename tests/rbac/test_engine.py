"""The decision engine (`rbac.engine`): every rule of the RBAC semantics, and the seed's examples.

Pure unit tests: the engine is a function of (grants, requirement), so no database is needed.
"""

from __future__ import annotations

import pytest

from rbac.demo import DEMO, DEMO_POLICIES
from rbac.engine import KINDS, Decision, Grants, Requirement, decide, filter_tools

# A principal holding one name of every kind, and one holding nothing at all (but authenticated).
FULL = Grants.of(
    roles=["admin"], groups=["engineering"], scopes=["read"], resources=["projects"], permissions=["projects:read"]
)
NOTHING = Grants()

# One requirement per kind, each satisfied by FULL.
ONE_OF_EACH = {
    "roles": ["admin"],
    "groups": ["engineering"],
    "scopes": ["read"],
    "resources": ["projects"],
    "permissions": ["projects:read"],
}


# --- Fail closed ---------------------------------------------------------------------------------------------


def test_denies_anonymous_even_for_an_open_tool() -> None:
    decision = decide(None, Requirement.of())
    assert decision.allowed is False
    assert decision.reason == "authentication required"


def test_denies_anonymous_whatever_the_requirement() -> None:
    assert not decide(None, Requirement.of(roles=["admin"]))
    assert not decide(None, Requirement.of(roles=["admin"], require_all=True))
    assert not decide(None, None)


def test_denies_a_tool_without_a_policy() -> None:
    decision = decide(FULL, None)
    assert decision.allowed is False
    assert "no policy" in decision.reason
    assert decision.missing == {}


def test_denies_a_disabled_policy_even_when_it_is_open() -> None:
    decision = decide(FULL, Requirement.of(enabled=False))
    assert decision.allowed is False
    assert "disabled" in decision.reason


def test_denies_a_disabled_policy_the_user_would_otherwise_satisfy() -> None:
    assert decide(FULL, Requirement.of(roles=["admin"])).allowed
    assert not decide(FULL, Requirement.of(roles=["admin"], enabled=False)).allowed
    assert not decide(FULL, Requirement.of(roles=["admin"], require_all=True, enabled=False)).allowed


def test_decision_is_falsy_when_denied_and_truthy_when_allowed() -> None:
    assert bool(decide(FULL, Requirement.of())) is True
    assert bool(decide(FULL, None)) is False


# --- Open requirement ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("require_all", [False, True])
def test_open_requirement_allows_any_authenticated_user(require_all: bool) -> None:
    for grants in (FULL, NOTHING, Grants.of(roles=["x"])):
        decision = decide(grants, Requirement.of(require_all=require_all))
        assert decision.allowed is True
        assert decision.reason == "allowed: any authenticated user"


def test_requirement_with_only_empty_lists_is_open() -> None:
    requirement = Requirement.of(roles=[], groups=[], scopes=[], resources=[], permissions=[])
    assert requirement.is_open
    assert decide(NOTHING, requirement).allowed


def test_none_lists_count_as_empty() -> None:
    requirement = Requirement.of(roles=None, groups=None, scopes=None, resources=None, permissions=None)
    assert requirement.is_open
    assert decide(NOTHING, requirement).allowed


# --- require_all=False: any item of any non-empty list ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_any_mode_grants_on_a_single_match_of_each_kind(kind: str) -> None:
    requirement = Requirement.of(**{kind: ["nope", ONE_OF_EACH[kind][0]]})
    held_only_this_kind = Grants.of(**{kind: ONE_OF_EACH[kind]})
    assert decide(held_only_this_kind, requirement).allowed


@pytest.mark.parametrize("kind", KINDS)
def test_any_mode_denies_without_a_match_and_names_what_would_do(kind: str) -> None:
    requirement = Requirement.of(**{kind: ["zeta", "alpha"]})
    decision = decide(FULL, requirement)
    assert decision.allowed is False
    assert decision.missing == {kind: ("alpha", "zeta")}
    assert decision.reason == f"denied: needs any of {kind} [alpha, zeta]"


@pytest.mark.parametrize("matching_kind", KINDS)
def test_any_mode_one_matching_list_is_enough_when_the_others_fail(matching_kind: str) -> None:
    lists = {kind: ["unheld"] for kind in KINDS}
    lists[matching_kind] = ONE_OF_EACH[matching_kind]
    assert decide(FULL, Requirement.of(**lists)).allowed


def test_any_mode_reason_names_the_matching_grant() -> None:
    decision = decide(Grants.of(roles=["admin"]), Requirement.of(roles=["admin", "manager"]))
    assert decision.reason == "allowed: has role admin"
    assert decision.missing == {}


def test_any_mode_ignores_empty_lists() -> None:
    # Empty groups/scopes must not make the requirement unsatisfiable, nor open.
    requirement = Requirement.of(roles=["admin"], groups=[], scopes=[], resources=[], permissions=[])
    assert decide(Grants.of(roles=["admin"]), requirement).allowed
    decision = decide(NOTHING, requirement)
    assert decision.allowed is False
    assert decision.missing == {"roles": ("admin",)}


def test_any_mode_denial_lists_every_non_empty_kind() -> None:
    requirement = Requirement.of(roles=["admin"], scopes=["write", "admin"], resources=["production"])
    decision = decide(NOTHING, requirement)
    assert decision.allowed is False
    assert decision.missing == {"roles": ("admin",), "scopes": ("admin", "write"), "resources": ("production",)}
    assert decision.reason == "denied: needs any of roles [admin]; scopes [admin, write]; resources [production]"


def test_any_mode_a_user_with_no_grants_is_denied() -> None:
    for kind in KINDS:
        assert not decide(NOTHING, Requirement.of(**{kind: ONE_OF_EACH[kind]})).allowed


def test_any_mode_kinds_do_not_cross_match() -> None:
    # A role called "read" is not the scope "read"; a resource "projects" is not the permission "projects:read".
    grants = Grants.of(roles=["read"], scopes=["admin"], resources=["projects"])
    assert not decide(grants, Requirement.of(scopes=["read"])).allowed
    assert not decide(grants, Requirement.of(roles=["admin"])).allowed
    assert not decide(grants, Requirement.of(permissions=["projects:read"])).allowed
    assert not decide(Grants.of(permissions=["projects:read"]), Requirement.of(resources=["projects"])).allowed


# --- require_all=True: every non-empty list; one item each, except every listed resource -----------------------


@pytest.mark.parametrize("kind", ["roles", "groups", "scopes", "permissions"])
def test_all_mode_one_item_suffices_within_a_list(kind: str) -> None:
    requirement = Requirement.of(**{kind: ["other", "another", ONE_OF_EACH[kind][0]]}, require_all=True)
    assert decide(FULL, requirement).allowed


def test_all_mode_requires_every_listed_resource() -> None:
    requirement = Requirement.of(resources=["production", "sensitive-data"], require_all=True)
    assert decide(Grants.of(resources=["production", "sensitive-data"]), requirement).allowed
    assert decide(Grants.of(resources=["production", "sensitive-data", "extra"]), requirement).allowed
    decision = decide(Grants.of(resources=["production"]), requirement)
    assert decision.allowed is False
    assert decision.missing == {"resources": ("sensitive-data",)}
    assert decision.reason == "denied: missing all of resources [sensitive-data]"


def test_all_mode_names_every_missing_resource() -> None:
    requirement = Requirement.of(resources=["c", "a", "b"], require_all=True)
    decision = decide(Grants.of(resources=["b"]), requirement)
    assert decision.missing == {"resources": ("a", "c")}
    assert decision.reason == "denied: missing all of resources [a, c]"


def test_any_mode_one_resource_is_enough() -> None:
    # The "every resource" rule belongs to require_all only.
    requirement = Requirement.of(resources=["production", "sensitive-data"])
    assert decide(Grants.of(resources=["production"]), requirement).allowed


@pytest.mark.parametrize("failing_kind", KINDS)
def test_all_mode_denies_when_any_one_list_is_unmet(failing_kind: str) -> None:
    lists = dict(ONE_OF_EACH)
    lists[failing_kind] = ["unheld"]
    decision = decide(FULL, Requirement.of(**lists, require_all=True))
    assert decision.allowed is False
    assert decision.missing == {failing_kind: ("unheld",)}
    qualifier = "all of" if failing_kind == "resources" else "one of"
    assert decision.reason == f"denied: missing {qualifier} {failing_kind} [unheld]"


def test_all_mode_allows_when_every_list_is_met() -> None:
    decision = decide(FULL, Requirement.of(**ONE_OF_EACH, require_all=True))
    assert decision.allowed is True
    assert decision.reason == "allowed: meets every requirement"
    assert decision.missing == {}


def test_all_mode_ignores_empty_lists() -> None:
    requirement = Requirement.of(roles=["admin"], groups=[], scopes=[], resources=[], permissions=[], require_all=True)
    assert decide(Grants.of(roles=["admin"]), requirement).allowed


def test_all_mode_denial_names_everything_missing_in_kind_order() -> None:
    requirement = Requirement.of(
        roles=["admin", "superuser"],
        groups=["security-team"],
        scopes=["write", "admin"],
        resources=["production", "sensitive-data"],
        require_all=True,
    )
    decision = decide(Grants.of(roles=["admin"], scopes=["read"], resources=["production"]), requirement)
    assert decision.allowed is False
    assert decision.missing == {
        "groups": ("security-team",),
        "scopes": ("admin", "write"),
        "resources": ("sensitive-data",),
    }
    assert list(decision.missing) == ["groups", "scopes", "resources"]
    assert decision.reason == (
        "denied: missing one of groups [security-team]; one of scopes [admin, write]; all of resources [sensitive-data]"
    )


def test_all_mode_lists_only_what_is_missing_of_a_partly_met_requirement() -> None:
    requirement = Requirement.of(roles=["deployer"], scopes=["write"], require_all=True)
    decision = decide(Grants.of(roles=["deployer"]), requirement)
    assert decision.missing == {"scopes": ("write",)}
    assert "roles" not in decision.reason


# --- Exact, case-sensitive matching --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("require_all", [False, True])
def test_matching_is_case_sensitive(kind: str, require_all: bool) -> None:
    requirement = Requirement.of(**{kind: ["Admin"]}, require_all=require_all)
    assert not decide(Grants.of(**{kind: ["admin"]}), requirement).allowed
    assert not decide(Grants.of(**{kind: ["ADMIN"]}), requirement).allowed
    assert decide(Grants.of(**{kind: ["Admin"]}), requirement).allowed


@pytest.mark.parametrize("held", ["admin ", " admin", "admins", "adm", "admin:read", "role:admin"])
def test_matching_is_exact_not_prefix_or_substring(held: str) -> None:
    assert not decide(Grants.of(roles=[held]), Requirement.of(roles=["admin"])).allowed


def test_permission_matches_resource_and_action_exactly() -> None:
    requirement = Requirement.of(permissions=["projects:read"])
    assert decide(Grants.of(permissions=["projects:read"]), requirement).allowed
    assert not decide(Grants.of(permissions=["projects:write"]), requirement).allowed
    assert not decide(Grants.of(permissions=["Projects:read"]), requirement).allowed
    assert not decide(Grants.of(permissions=["projects"]), requirement).allowed


# --- Constructors ------------------------------------------------------------------------------------------------


def test_grants_of_rejects_unknown_kinds() -> None:
    with pytest.raises(TypeError, match="role"):
        Grants.of(role=["admin"])
    with pytest.raises(TypeError, match="Unknown grant kinds"):
        Grants.of(roles=["admin"], claims=["x"])


def test_requirement_of_rejects_unknown_kinds() -> None:
    with pytest.raises(TypeError, match="Unknown requirement kinds"):
        Requirement.of(role=["admin"])
    with pytest.raises(TypeError, match="tenants"):
        Requirement.of(tenants=["acme"], require_all=True)


def test_grants_of_and_requirement_of_default_to_empty() -> None:
    assert Grants.of() == Grants()
    assert Requirement.of() == Requirement()
    assert Requirement.of().require_all is False
    assert Requirement.of().enabled is True


def test_grants_as_claims_is_sorted_per_kind() -> None:
    grants = Grants.of(roles=["developer", "admin"], scopes=["write", "read"])
    assert grants.as_claims() == {
        "roles": ["admin", "developer"],
        "groups": [],
        "scopes": ["read", "write"],
        "resources": [],
        "permissions": [],
    }


# --- filter_tools ------------------------------------------------------------------------------------------------


def test_filter_tools_keeps_order_and_drops_unknown_tools() -> None:
    policies = {
        "b_open": Requirement.of(),
        "a_admin": Requirement.of(roles=["admin"]),
        "c_denied": Requirement.of(roles=["root"]),
        "d_disabled": Requirement.of(enabled=False),
    }
    tools = ["d_disabled", "b_open", "no_policy", "c_denied", "a_admin"]
    assert filter_tools(FULL, policies, tools) == ["b_open", "a_admin"]
    assert filter_tools(None, policies, tools) == []


# --- The seed's examples -------------------------------------------------------------------------------------------

# The demo users' effective grants, written out from the seed's table.
DEMO_GRANTS: dict[str, Grants] = {
    "alice": Grants.of(
        roles=["admin", "developer"],
        groups=["engineering"],
        scopes=["read", "write"],
        resources=["projects", "analytics"],
    ),
    "bob": Grants.of(roles=["analyst"], groups=[], scopes=["read"], resources=["analytics"]),
    "carol": Grants.of(roles=["deployer"], groups=["devops"], scopes=["write"], resources=["production"]),
    "dave": Grants.of(
        roles=["superuser"], groups=["security-team"], scopes=["admin"], resources=["production", "sensitive-data"]
    ),
    "erin": Grants.of(roles=["admin"], groups=[], scopes=["read", "write"], resources=[]),
}

# Every demo user x every demo tool, worked out by hand from the semantics ("Y" allowed, "-" denied).
USERS = ("alice", "bob", "carol", "dave", "erin")
MATRIX_TEXT = """
tool                  alice bob carol dave erin
hello                   Y    Y    Y    Y    Y
calculator              Y    Y    Y    Y    Y
admin_panel             Y    -    -    -    Y
admin_dashboard         Y    -    -    -    Y
create_resource         Y    -    Y    -    Y
view_analytics          Y    Y    -    -    -
view_reports            Y    Y    -    -    Y
deploy_production       -    -    Y    -    -
engineering_tools       Y    -    Y    -    -
sensitive_operations    -    -    -    Y    -
list_my_repos           Y    Y    -    -    Y
"""


def _matrix() -> dict[tuple[str, str], bool]:
    header, *rows = MATRIX_TEXT.strip().splitlines()
    assert tuple(header.split()[1:]) == USERS
    cells: dict[tuple[str, str], bool] = {}
    for row in rows:
        tool, *marks = row.split()
        for user, mark in zip(USERS, marks, strict=True):
            cells[(user, tool)] = mark == "Y"
    return cells


MATRIX = _matrix()


def _demo_requirement(tool: str) -> Requirement:
    return Requirement.of(**DEMO_POLICIES[tool])


def test_matrix_covers_every_demo_user_and_tool() -> None:
    assert {tool for _, tool in MATRIX} == set(DEMO_POLICIES)
    assert {user for user, _ in MATRIX} == set(DEMO_GRANTS)
    assert len(MATRIX) == len(DEMO_POLICIES) * len(DEMO_GRANTS)


@pytest.mark.parametrize(("user", "tool"), sorted(MATRIX))
def test_demo_matrix(user: str, tool: str) -> None:
    decision = decide(DEMO_GRANTS[user], _demo_requirement(tool))
    assert decision.allowed is MATRIX[(user, tool)], decision.reason


def test_demo_tools_list_per_user() -> None:
    policies = {tool: _demo_requirement(tool) for tool in DEMO_POLICIES}
    tools = list(DEMO_POLICIES)
    for user, grants in DEMO_GRANTS.items():
        expected = [tool for tool in tools if MATRIX[(user, tool)]]
        assert filter_tools(grants, policies, tools) == expected, user


def test_hides_admin_tools_from_analyst() -> None:
    bob = DEMO_GRANTS["bob"]
    assert not decide(bob, _demo_requirement("admin_panel"))
    assert decide(bob, _demo_requirement("admin_panel")).missing == {"roles": ("admin",)}
    assert decide(bob, _demo_requirement("view_reports")).reason == "allowed: has role analyst"


def test_deploy_production_explains_that_alice_lacks_production() -> None:
    decision = decide(DEMO_GRANTS["alice"], _demo_requirement("deploy_production"))
    assert decision.allowed is False
    assert decision.missing == {"resources": ("production",)}
    assert decision.reason == "denied: missing all of resources [production]"


def test_sensitive_operations_needs_both_resources() -> None:
    # Dave with only one of the two resources is denied: "production AND sensitive-data".
    dave_without_sensitive = Grants.of(
        roles=["superuser"], groups=["security-team"], scopes=["admin"], resources=["production"]
    )
    decision = decide(dave_without_sensitive, _demo_requirement("sensitive_operations"))
    assert decision.allowed is False
    assert decision.missing == {"resources": ("sensitive-data",)}


def test_view_analytics_explains_erin_lacks_the_resource() -> None:
    decision = decide(DEMO_GRANTS["erin"], _demo_requirement("view_analytics"))
    assert decision.missing == {"resources": ("analytics",)}


def test_blog_user_sees_calculator_admin_dashboard_and_view_analytics() -> None:
    user = Grants.of(
        roles=["admin", "developer"],
        groups=["engineering"],
        scopes=["read", "write"],
        resources=["projects", "analytics"],
    )
    for tool in ("calculator", "admin_dashboard", "view_analytics"):
        assert decide(user, _demo_requirement(tool)).allowed, tool


def _grants_from_demo_data(email: str) -> Grants:
    """What `seed_rbac` gives `email`: direct roles plus roles bound to the user's groups, and their grants."""
    for spec in DEMO.values():
        if email in spec["users"]:
            direct, groups = spec["users"][email]
            roles = set(direct) | {role for group in groups for role in spec["groups"][group]}
            return Grants.of(
                roles=roles,
                groups=groups,
                scopes={scope for role in roles for scope in spec["roles"][role]["scopes"]},
                resources={resource for role in roles for resource in spec["roles"][role]["resources"]},
            )
    raise AssertionError(f"{email} is not a demo user")


@pytest.mark.parametrize("user", USERS)
def test_demo_seed_data_gives_the_users_the_tabled_grants(user: str) -> None:
    # Keeps the literal table above honest against what `seed_demo` actually creates.
    domain = "globex.test" if user == "erin" else "acme.test"
    assert _grants_from_demo_data(f"{user}@{domain}") == DEMO_GRANTS[user]


def test_denial_is_a_decision_with_missing_names() -> None:
    decision = decide(NOTHING, _demo_requirement("admin_panel"))
    assert isinstance(decision, Decision)
    assert decision == Decision(False, "denied: needs any of roles [admin]", {"roles": ("admin",)})


@pytest.mark.parametrize("factory", [Requirement.of, Grants.of])
def test_a_bare_string_is_refused_instead_of_becoming_letters(factory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="must be a list of names"):
        factory(roles="admin")
