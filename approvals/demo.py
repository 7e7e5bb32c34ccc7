"""Demo approval policies for `seed_demo` (idempotent): `deploy_production` waits for one holder of the role
`admin` (never the caller), `sensitive_operations` for the caller's own confirmation with a fresh second factor."""

from __future__ import annotations

from typing import Any

from rbac import services as rbac
from rbac.demo import DEMO, STANDARD_OAUTH_APP
from rbac.models import ToolPolicy

DEMO_APPROVALS: dict[str, dict[str, Any]] = {
    "deploy_production": {"approval": ToolPolicy.Approval.OTHERS, "approval_role": "admin"},
    "sensitive_operations": {"approval": ToolPolicy.Approval.SELF},
}


def seed_approvals(slug: str, actor: Any = "cli:seed_demo") -> int:
    """Give the demo tools of tenant `slug` their approval policy where they have none yet; returns how many."""
    if slug not in DEMO or "admin" not in DEMO[slug]["roles"]:
        return 0
    count = 0
    for app in ("demo", STANDARD_OAUTH_APP):
        for tool, fields in DEMO_APPROVALS.items():
            policy = ToolPolicy.objects.filter(application__slug=app, tool_name=tool).first()
            if policy is None or policy.needs_approval:
                continue
            rbac.upsert_tool_policy.nested(actor=actor, application=policy.application, tool_name=tool, **fields)
            count += 1
    return count
