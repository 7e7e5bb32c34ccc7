"""Demo RBAC data for `seed_demo` (idempotent): the seed's roles, groups and tool policies."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from rbac import services
from rbac.models import Application, Group, Resource, Role, Scope, ToolPolicy

# role -> the scopes and resources it grants
ACME_ROLES = {
    "admin": {"scopes": ["read", "write"], "resources": []},
    "developer": {"scopes": ["read", "write"], "resources": ["projects", "analytics"]},
    "analyst": {"scopes": ["read"], "resources": ["analytics"]},
    "deployer": {"scopes": ["write"], "resources": ["production"]},
    "manager": {"scopes": ["read"], "resources": []},
    "superuser": {"scopes": ["admin"], "resources": ["production", "sensitive-data"]},
}
GLOBEX_ROLES = {"admin": {"scopes": ["read", "write"], "resources": []}}

DEMO: dict[str, dict[str, Any]] = {
    "acme": {
        "roles": ACME_ROLES,
        "groups": {"engineering": [], "devops": ["deployer"], "security-team": []},  # group -> roles bound to it
        "scopes": ["read", "write", "admin"],
        "resources": ["projects", "analytics", "production", "sensitive-data"],
        "users": {  # user -> (direct roles, groups)
            "alice@acme.test": (["admin", "developer"], ["engineering"]),
            "bob@acme.test": (["analyst"], []),
            "carol@acme.test": ([], ["devops"]),
            "dave@acme.test": (["superuser"], ["security-team"]),
        },
    },
    "globex": {
        "roles": GLOBEX_ROLES,
        "groups": {},
        "scopes": ["read", "write"],
        "resources": [],
        "users": {"erin@globex.test": (["admin"], [])},
    },
}

# The seed's example tools and their requirements.
DEMO_POLICIES: dict[str, dict[str, Any]] = {
    "hello": {},
    "calculator": {},
    "admin_panel": {"roles": ["admin"]},
    "admin_dashboard": {"roles": ["admin"]},
    "create_resource": {"scopes": ["write"]},
    "view_analytics": {"scopes": ["read"], "resources": ["analytics"], "require_all": True},
    "view_reports": {"roles": ["admin", "manager", "analyst"]},
    "deploy_production": {
        "roles": ["admin", "deployer"],
        "scopes": ["write"],
        "resources": ["production"],
        "require_all": True,
    },
    "engineering_tools": {"groups": ["engineering", "devops"]},
    "sensitive_operations": {
        "roles": ["admin", "superuser"],
        "groups": ["security-team"],
        "scopes": ["write", "admin"],
        "resources": ["production", "sensitive-data"],
        "require_all": True,
    },
    "list_my_repos": {"scopes": ["read"]},
}


def seed_rbac(slug: str, actor: Any = "cli:seed_demo") -> None:
    """Create the demo RBAC data of tenant `slug` in the current schema; existing rows are kept as they are."""
    spec = DEMO.get(slug)
    if spec is None:
        return
    scopes = {name: Scope.objects.get_or_create(name=name)[0] for name in spec["scopes"]}
    resources = {name: Resource.objects.get_or_create(name=name)[0] for name in spec["resources"]}
    roles: dict[str, Role] = {}
    for name, grants in spec["roles"].items():
        role, created = Role.objects.get_or_create(name=name)
        if created:
            role.scopes.set([scopes[s] for s in grants["scopes"]])
            role.resources.set([resources[r] for r in grants["resources"]])
        roles[name] = role
    groups: dict[str, Group] = {}
    for name, group_roles in spec["groups"].items():
        group, created = Group.objects.get_or_create(name=name)
        groups[name] = group
        if created:
            for role_name in group_roles:
                services.grant_role.nested(actor=actor, role=roles[role_name], group=group)
    for email, (role_names, group_names) in spec["users"].items():
        user = User.objects.filter(email=email).first()
        if user is None or user.role_bindings.exists() or user.group_memberships.exists():
            continue  # already seeded (or changed by someone): leave it alone
        for role_name in role_names:
            services.grant_role.nested(actor=actor, role=roles[role_name], user=user)
        for group_name in group_names:
            services.add_member.nested(actor=actor, group=groups[group_name], user=user)
    application, _ = Application.objects.get_or_create(
        slug="demo", defaults={"name": "Demo tools", "description": "The seed's example tools."}
    )
    for tool, requirement in DEMO_POLICIES.items():
        if not ToolPolicy.objects.filter(application=application, tool_name=tool).exists():
            services.upsert_tool_policy.nested(actor=actor, application=application, tool_name=tool, **requirement)


STANDARD_OAUTH_APP = "demo-oauth"


def seed_standard_oauth_application(slug: str, actor: Any = "cli:seed_demo") -> Application | None:
    """The demo tools again at /t/<tenant>/mcp/demo-oauth in `bearer` mode (for `seed_demo` only).

    Clients that start OAuth only on a 401 (MCP Inspector, Claude Code, VS Code) never meet one at `demo`, whose
    `both` mode serves anonymous callers the login tools; here the first request is challenged."""
    if slug not in DEMO:
        return None
    application, created = Application.objects.get_or_create(
        slug=STANDARD_OAUTH_APP,
        defaults={
            "name": "Demo tools (standard OAuth)",
            "description": "The seed's example tools for clients that speak MCP authorization (bearer mode).",
            "auth_mode": Application.AuthMode.BEARER,
        },
    )
    for tool, requirement in DEMO_POLICIES.items():
        if not ToolPolicy.objects.filter(application=application, tool_name=tool).exists():
            services.upsert_tool_policy.nested(actor=actor, application=application, tool_name=tool, **requirement)
    return application
