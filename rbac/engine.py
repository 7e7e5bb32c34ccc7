"""The one decision engine: a pure function of (grants, requirement) → decision with a reason.

Everything that authorizes — tools/list, tools/call, the REST API, the SDK endpoints, the admin's
effective-permissions page and the policy simulator — calls `decide` (or `filter_tools`, which is
`decide` per tool). It fails closed: no grants (anonymous), no policy, or a disabled policy → deny.

Semantics (the seed's, exactly):
- only non-empty lists count; no lists at all → any authenticated user;
- ``require_all=False``: allowed if the user matches any item of any non-empty list;
- ``require_all=True``: every non-empty list must be satisfied; one match is enough within roles,
  groups, scopes and permissions, but every listed resource is required;
- names match exactly and case-sensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KINDS = ("roles", "groups", "scopes", "resources", "permissions")


def _names(kind: str, values: Iterable[str] | None) -> frozenset[str]:
    # A bare string would become a set of letters (and "a" would match): refuse it rather than fail open.
    if isinstance(values, str):
        raise TypeError(f"{kind} must be a list of names, not the string {values!r}")
    return frozenset(values or ())


_SINGULAR = {
    "roles": "role",
    "groups": "group",
    "scopes": "scope",
    "resources": "resource",
    "permissions": "permission",
}


@dataclass(frozen=True, slots=True)
class Grants:
    """What a principal holds. `sources` maps (kind, name) to where it came from, for explanations."""

    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    sources: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, **lists: Iterable[str]) -> Grants:
        unknown = set(lists) - set(KINDS)
        if unknown:
            raise TypeError(f"Unknown grant kinds: {sorted(unknown)}")
        return cls(**{kind: _names(kind, lists.get(kind)) for kind in KINDS})

    def as_claims(self) -> dict[str, list[str]]:
        return {kind: sorted(getattr(self, kind)) for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Requirement:
    """A tool's (or a service's) access requirement."""

    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    require_all: bool = False
    enabled: bool = True

    @classmethod
    def of(cls, *, require_all: bool = False, enabled: bool = True, **lists: Iterable[str] | None) -> Requirement:
        unknown = set(lists) - set(KINDS)
        if unknown:
            raise TypeError(f"Unknown requirement kinds: {sorted(unknown)}")
        return cls(**{kind: _names(kind, lists.get(kind)) for kind in KINDS}, require_all=require_all, enabled=enabled)

    @property
    def is_open(self) -> bool:
        """True when no list is set: any authenticated user qualifies."""
        return not (self.roles or self.groups or self.scopes or self.resources or self.permissions)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    # For denials: what would have been enough (any-mode) or what is missing (all-mode), per kind.
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.allowed


NO_POLICY = Decision(False, "no policy for this tool (denied by default)")
DISABLED = Decision(False, "the tool's policy is disabled")
ANONYMOUS = Decision(False, "authentication required")
OPEN = Decision(True, "allowed: any authenticated user")


def _fmt(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def decide(grants: Grants | None, requirement: Requirement | None) -> Decision:
    """Decide whether `grants` satisfy `requirement`. Pure: no I/O, no state."""
    if grants is None:
        return ANONYMOUS
    if requirement is None:
        return NO_POLICY
    if not requirement.enabled:
        return DISABLED
    if requirement.is_open:
        return OPEN
    if requirement.require_all:
        return _decide_all(grants, requirement)
    return _decide_any(grants, requirement)


def _decide_any(grants: Grants, requirement: Requirement) -> Decision:
    wanted: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
        required: frozenset[str] = getattr(requirement, kind)
        if not required:
            continue
        matched = required & getattr(grants, kind)
        if matched:
            return Decision(True, f"allowed: has {_SINGULAR[kind]} {_fmt(matched)}")
        wanted[kind] = tuple(sorted(required))
    needs = "; ".join(f"{kind} [{_fmt(names)}]" for kind, names in wanted.items())
    return Decision(False, f"denied: needs any of {needs}", wanted)


def _decide_all(grants: Grants, requirement: Requirement) -> Decision:
    missing: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
        required: frozenset[str] = getattr(requirement, kind)
        if not required:
            continue
        held: frozenset[str] = getattr(grants, kind)
        if kind == "resources":
            lacking = required - held
            if lacking:
                missing[kind] = tuple(sorted(lacking))
        elif not required & held:
            missing[kind] = tuple(sorted(required))
    if not missing:
        return Decision(True, "allowed: meets every requirement")
    parts = [
        f"all of resources [{_fmt(names)}]" if kind == "resources" else f"one of {kind} [{_fmt(names)}]"
        for kind, names in missing.items()
    ]
    return Decision(False, "denied: missing " + "; ".join(parts), missing)


def filter_tools(grants: Grants | None, policies: Mapping[str, Requirement | None], tools: Iterable[str]) -> list[str]:
    """The tools (in the given order) whose requirement `grants` satisfy: `decide` applied to each."""
    return [tool for tool in tools if decide(grants, policies.get(tool)).allowed]
