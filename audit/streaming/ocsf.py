"""The OCSF (Open Cybersecurity Schema Framework 1.x) category, class and activity of each audit action.

SIEMs that normalise to OCSF (Amazon Security Lake, Splunk, Sentinel, Chronicle …) map our events with this;
`docs/audit.md` prints the same table. An action not named here falls back to its category's class, with
activity 99 (Other). `type_uid` is ``class_uid * 100 + activity_id``, as OCSF defines it.
"""

from __future__ import annotations

from typing import Any

IAM, APPLICATION = 3, 6
CATEGORY_NAMES = {IAM: "Identity & Access Management", APPLICATION: "Application Activity"}
CLASS_NAMES = {
    3001: "Account Change",
    3002: "Authentication",
    3004: "Entity Management",
    3005: "User Access Management",
    3006: "Group Management",
    6002: "Application Lifecycle",
    6003: "API Activity",
}
OTHER = 99

# action -> (class_uid, activity_id)
ACTIONS: dict[str, tuple[int, int]] = {
    "auth.login_succeeded": (3002, 1),  # Logon
    "auth.login_failed": (3002, 1),
    "auth.logged_out": (3002, 2),  # Logoff
    "auth.lockout": (3001, 9),  # Lock
    "accounts.user_access_revoked": (3005, 2),  # Revoke Privileges
    "oauth.token_issued": (3002, 4),  # Service Ticket Request
    "oauth.token_refreshed": (3002, 5),  # Service Ticket Renew
    "oauth.token_revoked": (3002, OTHER),
    "oauth.refresh_reuse_detected": (3002, OTHER),
    "oauth.consent_granted": (3005, 1),  # Assign Privileges
    "oauth.consent_denied": (3005, OTHER),
    "oauth.consent_revoked": (3005, 2),
    "rbac.role_granted": (3005, 1),
    "rbac.role_revoked": (3005, 2),
    "rbac.member_added": (3006, 3),  # Add User
    "rbac.member_removed": (3006, 4),  # Remove User
    "mcp.tools_listed": (6003, 2),  # Read
    "mcp.tool_call": (6003, OTHER),
    "service.read": (6003, 2),
    "audit.exported": (6003, 2),
    "audit.sink_dead_lettered": (6002, OTHER),
    "audit.sink_recovered": (6002, OTHER),
    "audit.stream_gap": (6002, OTHER),
}
# The last word of an action -> the Entity Management (3004) activity: 1 Create, 2 Read, 3 Update, 4 Delete.
ENTITY_VERBS = {
    "added": 1,
    "created": 1,
    "registered": 1,
    "issued": 1,
    "read": 2,
    "changed": 3,
    "updated": 3,
    "approved": 3,
    "rejected": 3,
    "rotated": 3,
    "replaced": 3,
    "activated": 3,
    "deactivated": 3,
    "published": 3,
    "deleted": 4,
}
# Categories whose other actions are changes to objects (Entity Management).
ENTITY_CATEGORIES = frozenset({"accounts", "admin", "api", "audit", "oauth", "rbac", "service", "tenant", "workloads"})
STATUS = {"success": 1, "allow": 1, "failure": 2, "deny": 2}  # status_id: 1 Success, 2 Failure
SEVERITY = {"success": 1, "allow": 1, "deny": 2, "failure": 3}  # severity_id: 1 Informational, 2 Low, 3 Medium


def _activity(action: str) -> tuple[int, int]:
    if action in ACTIONS:
        return ACTIONS[action]
    category, _, rest = action.partition(".")
    verb = rest.rsplit(".", 1)[-1].rsplit("_", 1)[-1]
    if category in ENTITY_CATEGORIES:
        return 3004, ENTITY_VERBS.get(verb, OTHER)
    return 6003, OTHER


def classify(action: str, outcome: str) -> dict[str, Any]:
    """The OCSF ids of one event: category, class, activity, type, status and severity."""
    class_uid, activity_id = _activity(action)
    category_uid = class_uid // 1000
    return {
        "category_uid": category_uid,
        "category_name": CATEGORY_NAMES[category_uid],
        "class_uid": class_uid,
        "class_name": CLASS_NAMES[class_uid],
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "status_id": STATUS.get(outcome, 0),
        "severity_id": SEVERITY.get(outcome, 0),
    }
