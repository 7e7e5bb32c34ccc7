"""Properties of the decision engine over random grants and requirements (hypothesis).

Small alphabets of names make matches frequent, so both allow and deny paths are exercised.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rbac.engine import KINDS, Grants, Requirement, decide, filter_tools

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)

NAMES = {
    "roles": ["admin", "Admin", "developer", "analyst"],
    "groups": ["engineering", "devops", "security-team"],
    "scopes": ["read", "write", "admin"],
    "resources": ["projects", "analytics", "production", "sensitive-data"],
    "permissions": ["projects:read", "projects:write", "production:deploy"],
}
TOOLS = [f"tool_{n}" for n in range(8)]


def _names(kind: str) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(NAMES[kind]), max_size=len(NAMES[kind]))


grants_strategy = st.builds(Grants, **{kind: _names(kind) for kind in KINDS})


@st.composite
def requirements(draw: st.DrawFn, *, require_all: bool | None = None, enabled: bool | None = None) -> Requirement:
    lists = {kind: draw(_names(kind)) for kind in KINDS}
    return Requirement(
        **lists,
        require_all=draw(st.booleans()) if require_all is None else require_all,
        enabled=draw(st.booleans() | st.just(True)) if enabled is None else enabled,
    )


policies_strategy = st.dictionaries(st.sampled_from(TOOLS), st.none() | requirements(), max_size=len(TOOLS))
tools_strategy = st.lists(st.sampled_from([*TOOLS, "unlisted"]), max_size=12)


@PROPERTY_SETTINGS
@given(grants=st.none() | grants_strategy, policies=policies_strategy, tools=tools_strategy)
def test_filter_tools_is_decide_per_tool(
    grants: Grants | None, policies: dict[str, Requirement | None], tools: list[str]
) -> None:
    expected = [tool for tool in tools if decide(grants, policies.get(tool)).allowed]
    assert filter_tools(grants, policies, tools) == expected


@PROPERTY_SETTINGS
@given(grants=grants_strategy, extra=grants_strategy, requirement=st.none() | requirements())
def test_adding_grants_never_turns_an_allow_into_a_deny(
    grants: Grants, extra: Grants, requirement: Requirement | None
) -> None:
    more = Grants(**{kind: getattr(grants, kind) | getattr(extra, kind) for kind in KINDS})
    if decide(grants, requirement).allowed:
        assert decide(more, requirement).allowed


@PROPERTY_SETTINGS
@given(grants=grants_strategy, requirement=requirements(require_all=True))
def test_require_all_allowed_implies_any_allowed(grants: Grants, requirement: Requirement) -> None:
    relaxed = Requirement(**{kind: getattr(requirement, kind) for kind in KINDS}, enabled=requirement.enabled)
    if decide(grants, requirement).allowed:
        assert decide(grants, relaxed).allowed


@PROPERTY_SETTINGS
@given(requirement=st.none() | requirements())
def test_anonymous_is_always_denied(requirement: Requirement | None) -> None:
    decision = decide(None, requirement)
    assert decision.allowed is False
    assert decision.reason == "authentication required"


@PROPERTY_SETTINGS
@given(grants=grants_strategy, requirement=requirements())
def test_a_denial_names_what_is_missing_and_an_allow_names_nothing(grants: Grants, requirement: Requirement) -> None:
    decision = decide(grants, requirement)
    if decision.allowed:
        assert decision.missing == {}
        return
    if not requirement.enabled:
        assert decision.missing == {}
        return
    assert decision.missing
    for kind, names in decision.missing.items():
        required = getattr(requirement, kind)
        assert set(names) <= required
        assert names == tuple(sorted(names))
        assert all(name in decision.reason for name in names)
        if requirement.require_all and kind == "resources":
            assert set(names) == required - getattr(grants, kind)
        else:
            assert not (required & getattr(grants, kind))


@PROPERTY_SETTINGS
@given(grants=grants_strategy, requirement=requirements(enabled=True))
def test_decide_matches_a_reference_reading_of_the_semantics(grants: Grants, requirement: Requirement) -> None:
    lists = {kind: getattr(requirement, kind) for kind in KINDS if getattr(requirement, kind)}
    held = {kind: getattr(grants, kind) for kind in KINDS}
    if not lists:
        expected = True
    elif requirement.require_all:
        expected = all(
            names <= held[kind] if kind == "resources" else bool(names & held[kind]) for kind, names in lists.items()
        )
    else:
        expected = any(names & held[kind] for kind, names in lists.items())
    assert decide(grants, requirement).allowed is expected
