"""Who is asking, and the one place where a token's scopes narrow what its user may do.

A `Principal` is a user's effective grants (`rbac.grants`, read from the tenant database) and, when the user acts
through an OAuth token, the scopes that token carries. A token narrows, never widens: a call is decided with the
user's grants whose scopes are cut down to the token's (`Principal.call_grants`), and a token's scopes count only
as far as its holder still holds them (`Principal.scopes`). The MCP endpoint, the SDK-manager API,
`ServiceAccessSDK` and the OAuth token endpoint and introspection all build a `Principal` and ask it; nothing else
intersects scopes. `authorize` is the decision for one call: the engine's (`rbac.engine.decide`), run once when it
allows, and a second time only to tell a step-up (the user may, the token may not) from a plain denial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from audit.models import AuditEvent
from audit.recorder import Actor
from authsec_site.lib import tracing
from rbac.engine import KINDS, Decision, Grants, Requirement, decide, filter_tools


@dataclass(frozen=True)
class Principal:
    """A user (or, with `user_id` None, an OAuth client acting for itself) of one tenant, with what it holds.

    Equal principals are interchangeable; derived values (`call_grants`, `scopes`, `_user_info`) are computed once
    per instance, so a principal kept across requests (`mcp_endpoint.bearer`) pays for them once."""

    user_id: int | None
    email: str
    tenant_slug: str
    grants: Grants
    token_id: str = ""
    client_id: str = ""
    # The scopes of the token the principal acts through; None when there is no token (a login-tool or SDK
    # session), which narrows nothing.
    token_scopes: frozenset[str] | None = None
    # Scopes held outside RBAC, which a token may carry but which never satisfy an RBAC requirement: the OIDC
    # scopes, the management API's `admin` for tenant staff, and, for a client acting for itself (no user whose
    # grants could narrow them), the tenant's scope names (`oauth.scopes.token_principal` sets them).
    extra_scopes: frozenset[str] = frozenset()

    @cached_property
    def limited(self) -> bool:
        """True when the token lacks some RBAC scope the user holds (only then can a decision differ from the
        user's own, and a call need a step-up)."""
        return self.token_scopes is not None and not self.grants.scopes <= self.token_scopes

    @cached_property
    def scopes(self) -> frozenset[str]:
        """The scopes in force: those the principal holds (RBAC and extra), cut down to the token's."""
        held = self.grants.scopes | self.extra_scopes if self.extra_scopes else self.grants.scopes
        return held if self.token_scopes is None else held & self.token_scopes

    @cached_property
    def call_grants(self) -> Grants:
        """The grants a call is decided with: the user's, with RBAC scopes limited to the scopes in force."""
        if not self.limited:
            return self.grants
        return replace(self.grants, scopes=self.grants.scopes & self.scopes)

    def in_force(self, scopes: Iterable[str]) -> list[str]:
        """`scopes` (a token's, in its order; each once) that count for this principal (see `scopes`)."""
        return [scope for scope in dict.fromkeys(scopes) if scope in self.scopes]

    def user_info(self) -> dict[str, Any]:
        """A fresh copy of `_user_info` (a tool may change what it gets)."""
        return {key: list(value) if isinstance(value, list) else value for key, value in self._user_info.items()}

    @cached_property
    def _user_info(self) -> dict[str, Any]:
        """What a tool receives as ``arguments["_user_info"]``: database-backed grants (scopes narrowed to a
        token's), never token claims."""
        return {
            "user_id": self.user_id,
            "email": self.email,
            "tenant_id": self.tenant_slug,
            **{kind: sorted(getattr(self.call_grants, kind)) for kind in KINDS},
        }

    @cached_property
    def audit_actor(self) -> Actor:
        """Who this principal is in the audit log."""
        if self.user_id is None:
            return Actor(AuditEvent.ActorType.CLIENT, self.client_id, self.client_id)
        return Actor(AuditEvent.ActorType.USER, str(self.user_id), self.email)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The answer to one call: the engine's decision and, when only the token's scopes stand in the way, the
    scopes to authorize again with (RFC 6750 ``insufficient_scope``, MCP step-up authorization)."""

    decision: Decision
    step_up: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def reason(self) -> str:
        return self.decision.reason

    def __bool__(self) -> bool:
        return self.decision.allowed


def _decision_attributes(authorization: Authorization) -> dict[str, Any]:
    return {"authsec.allowed": authorization.allowed, "authsec.reason": authorization.reason}


@tracing.traced("authsec.decision", result_attributes=_decision_attributes)
def authorize(principal: Principal | None, requirement: Requirement | None) -> Authorization:
    """May `principal` (None: anonymous) make a call that needs `requirement`? Fails closed like `decide`.

    Decided with `call_grants`. A denial the user's own grants would allow is a step-up (the requirement's scopes
    plus the token's); a denial the user's grants share is explained by them, as the user cannot call it at all."""
    if principal is None:
        return Authorization(decide(None, requirement))
    decision = decide(principal.call_grants, requirement)
    if decision.allowed or not principal.limited:
        return Authorization(decision)
    held = decide(principal.grants, requirement)
    if not held.allowed or requirement is None:
        return Authorization(held)
    return Authorization(decision, tuple(sorted(requirement.scopes | principal.token_scopes)))  # type: ignore[operator]


@tracing.traced("authsec.tools_filter")
def visible(principal: Principal | None, policies: Mapping[str, Requirement | None], tools: Iterable[str]) -> list[str]:
    """The tools (in the given order) listed to `principal`: decided with the user's own grants, not the token's
    narrowing, so a client sees what its user may call and can step up to call it."""
    return filter_tools(principal.grants if principal is not None else None, policies, tools)
