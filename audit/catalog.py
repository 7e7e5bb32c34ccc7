"""The kinds of audit events the features write today, and those of features still being built.

`tests/audit/test_coverage.py` has one scenario per entry of `EVENT_KINDS` that drives the real feature
and checks its event; a feature that starts writing a new kind adds it here and a scenario there.
"""

from __future__ import annotations

# action (``<model>`` stands for a model name) -> what writes it
EVENT_KINDS: dict[str, str] = {
    "tenant.created": "create_tenant (platform admin, manage.py create_tenant): in the public and the new schema",
    "tenant.activated": "platform admin action / tenants.services.set_tenant_active",
    "tenant.deactivated": "platform admin action / tenants.services.set_tenant_active",
    "auth.login_succeeded": "a dashboard login (Django's user_logged_in signal)",
    "auth.login_failed": "a failed dashboard login (outcome failure; the typed email, never the password)",
    "auth.logged_out": "a dashboard logout",
    "accounts.user_access_revoked": (
        "a user deactivated or deleted (accounts.services, dashboard, any save): tokens, codes and MCP login "
        "sessions revoked (data: reason, counts per kind)"
    ),
    # --- rbac: rbac.services, for the dashboard (pages, inlines, bulk actions), the management API and the code
    "rbac.role_granted": "rbac.services.grant_role (data: role, user or group)",
    "rbac.role_revoked": "rbac.services.revoke_role (data: role, user or group)",
    "rbac.member_added": "rbac.services.add_member (data: group, user)",
    "rbac.member_removed": "rbac.services.remove_member (data: group, user)",
    "rbac.scope_created": "rbac.services.save_scope (data: before None, after)",
    "rbac.scope_changed": "rbac.services.save_scope (data: before, after, changes)",
    "rbac.scope_deleted": "rbac.services.delete_scope (data: before, after None)",
    "rbac.resource_created": "rbac.services.save_resource (data: before None, after)",
    "rbac.resource_changed": "rbac.services.save_resource (data: before, after, changes)",
    "rbac.resource_deleted": "rbac.services.delete_resource (data: before, after None)",
    "rbac.permission_created": "rbac.services.save_permission (data: before None, after)",
    "rbac.permission_changed": "rbac.services.save_permission (data: before, after, changes)",
    "rbac.permission_deleted": "rbac.services.delete_permission (data: before, after None)",
    "rbac.role_created": "rbac.services.save_role (data: before None, after, with scopes, resources, permissions)",
    "rbac.role_changed": "rbac.services.save_role (data: before, after, changes)",
    "rbac.role_deleted": "rbac.services.delete_role (data: before, after None, bindings_removed)",
    "rbac.group_created": "rbac.services.save_group (data: before None, after)",
    "rbac.group_changed": "rbac.services.save_group (data: before, after, changes)",
    "rbac.group_deleted": "rbac.services.delete_group (data: before, after None, members_removed, roles_removed)",
    "rbac.application_created": "rbac.services.save_application (data: before None, after)",
    "rbac.application_changed": "rbac.services.save_application, also (de)activation (data: before, after, changes)",
    "rbac.application_deleted": "rbac.services.delete_application (data: before, after None, tool_policies_removed)",
    "rbac.tool_policy_created": "rbac.services.save_tool_policy (data: before None, after)",
    "rbac.tool_policy_changed": "rbac.services.save_tool_policy, also enable/disable (data: before, after, changes)",
    "rbac.tool_policy_deleted": "rbac.services.delete_tool_policy (data: before, after None)",
    # --- tool pinning: rbac.pins (docs/pinning.md); data carries application or resource_server, tool, source
    "rbac.tool_pinned": "rbac.pins: a definition pinned at first sight or when a manifest tool is mapped (hash, via)",
    "rbac.tool_drift_detected": "rbac.pins.observe_tool: a definition differs from the pin (pinned_hash, new_hash, "
    "mode, held, warnings; outcome deny when held)",
    "rbac.tool_drift_withdrawn": "rbac.pins.observe_tool: the pinned definition is seen again (withdrawn_hash)",
    "rbac.tool_pin_approved": "rbac.pins.approve_pin: dashboard or API (before_hash, after_hash, warnings)",
    "rbac.tool_pin_rejected": "rbac.pins.reject_pin: dashboard or API (pinned_hash, rejected_hash)",
    "rbac.tool_pins_imported": "rbac.pins.import_pins: management API import (imported with hashes, skipped)",
    "rbac.pin_mode_changed": "rbac.pins.set_pin_mode: dashboard or API (before, after: hold, warn or off)",
    "auth.lockout": "the login throttle, at the attempt that reaches a limit (outcome deny; email, by account/ip)",
    "oauth.consent_granted": "the authorize page when a user allows a client (data: client_id, scopes)",
    "oauth.consent_denied": "the authorize page when a user refuses (outcome deny)",
    "oauth.consent_revoked": "oauth.views.revoke_consent (dashboard action); the client's tokens go with it",
    "oauth.token_issued": "the token endpoint: code or client credentials (client_id, grant, scope, aud, jti)",
    "oauth.token_refreshed": "the token endpoint: refresh token grant (the refresh token rotates)",
    "oauth.token_revoked": "the revocation endpoint (RFC 7009)",
    "oauth.refresh_reuse_detected": "a rotated refresh token used again: its whole family is revoked (outcome deny)",
    "oauth.client_registered": "dynamic client registration (RFC 7591; data: status active or pending)",
    "oauth.client_approved": "oauth.client_services.set_client_status: dashboard home button or list action "
    "(data: client_id, name, before, after status)",
    "oauth.client_rejected": "oauth.client_services.set_client_status: dashboard home button or list action "
    "(data: client_id, name, before, after status)",
    "oauth.registration_mode_changed": "oauth.client_services.set_dynamic_registration: seed_demo puts the demo "
    "tenants' modes back (data: before, after)",
    "oauth.key_created": "oauth.keys.create_signing_key: a tenant's first signing key (private half in Vault)",
    "oauth.key_rotated": "signing-key rotation (hourly task when due, or the dashboard action)",
    "oauth.key_lost": "oauth.keys.signing_key: Vault no longer holds the current key's private half; a new key "
    "replaces it (outcome failure; data: lost, replaced_by)",
    "audit.exported": "a CSV or JSON Lines export from the review pages (data: format, filters)",
    "audit.archived": "the retention job (data: archived range, file, SHA-256, checkpoint hash)",
    "audit.archive_refused": "the retention job when the events due do not verify (outcome failure)",
    "workloads.svid_issued": "workloads.services.issue_svid: dashboard action, renewal task, first use",
    "workloads.svid_issue_failed": "issue_svid when Vault or the SVID files fail (outcome failure; old files kept)",
    "oauth.resource_server_created": "oauth.resource_servers.create_resource_server (dashboard add; uri, client_id)",
    "oauth.resource_server_deleted": "oauth.resource_servers.delete_resource_server (dashboard; client deleted too)",
    "oauth.resource_server_manifest_published": "PUT …/sdk-manifest by the SDK (data: tools, added, removed)",
    "oauth.resource_server_policy_changed": "a tool mapping saved (dashboard, map_tool): generation, tool_policy",
    "oauth.resource_server_auth_failed": "sdk-policy / sdk-manifest with wrong credentials (outcome deny)",
    "service.created": "services.services.create_service (dashboard add, seed_demo; data: service name)",
    "service.secret_created": "the first secret version of a service written to Vault (data: vault_version)",
    "service.secret_replaced": "a new secret version from the dashboard (data: vault_version, keys_changed)",
    "service.secret_rotated": "a rotation (Celery or rotate now; data: vault_version, rotation_kind)",
    "service.rotation_failed": "a failed rotation: current version kept (outcome failure; safe error message)",
    "service.read": "ServiceAccessSDK: a tool read a service (outcome allow/deny/failure; service, tool, version)",
    "service.deleted": "services.services.delete_service (dashboard delete; Vault versions deleted after)",
}

# Written by features still being built (each adds its kinds above with a scenario when it lands); for the
# MCP endpoint this shape is the contract the review pages' filters and "most denied tools" rely on.
PLANNED_EVENT_KINDS: dict[str, str] = {
    "mcp.tool_call": 'outcome allow/deny; data {"application", "tool", "reason", …} (top-level keys: indexed)',
    "mcp.tools_listed": 'outcome success; data {"application", "count"}',
    "oauth.code_reuse_detected": "an authorization code used twice (outcome deny)",
    "oauth.client_updated": "RFC 7592 client configuration update",
    "oauth.client_deleted": "RFC 7592 client deletion",
    "oauth.upstream_created": "upstream identity provider added (also oauth.upstream_changed / _deleted)",
    "accounts.user_created": "a user created at first upstream sign-in",
    "mcp.auth_session_started": "oauth_start: a login-tool session created (data: application, session hash prefix)",
    "mcp.auth_session_authenticated": "a login-tool session bound to a user (data: via callback/oauth_authenticate)",
    "mcp.auth_session_logged_out": "oauth_logout",
    "mcp.auth_session_revoked": "an admin revoked a login-tool session in the dashboard",
    "sdkmgr.tools_declared": "the AuthSec SDK declared tools whose requirement differs from the policy row",
    "sdkmgr.cleanup_requested": "the AuthSec SDK's cleanup-sessions at server shutdown (no session ended)",
    "sdkmgr.user_details_read": "/sdkmgr/services/user-details read for a session (no secret in it)",
}
