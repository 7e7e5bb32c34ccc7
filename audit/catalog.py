"""The kinds of audit events the features write today, and those of features still being built.

`tests/audit/test_coverage.py` has one scenario per entry of `EVENT_KINDS` that drives the real feature
and checks its event; a feature that starts writing a new kind adds it here and a scenario there.
"""

from __future__ import annotations

# action (``<model>`` stands for a model name) -> what writes it
EVENT_KINDS: dict[str, str] = {
    "tenant.created": "create_tenant (platform admin, manage.py create_tenant): in the public and the new schema",
    "tenant.activated": "tenants.services.set_tenant_active (platform admin page or bulk action)",
    "tenant.deactivated": "tenants.services.set_tenant_active (platform admin page or bulk action)",
    "auth.login_succeeded": "a dashboard login (Django's user_logged_in signal)",
    "auth.login_failed": "a failed dashboard login (outcome failure; the typed email, never the password)",
    "auth.logged_out": "a dashboard logout",
    "accounts.user_access_revoked": (
        "a user deactivated or deleted (accounts.services save_user / deactivate_user / delete_user, any save): "
        "tokens, codes and MCP login sessions revoked (data: reason, counts per kind)"
    ),
    # --- rbac: rbac.services, for the dashboard (pages, inlines, bulk actions), the management API and the code.
    # access_changes: who gains and who loses which tools, written by the dashboard's and the API's writes
    # (rbac.access_diff; docs/rbac.md)
    "rbac.role_granted": "rbac.services.grant_role (data: role, user or group; access_changes)",
    "rbac.role_revoked": "rbac.services.revoke_role (data: role, user or group; access_changes)",
    "rbac.member_added": "rbac.services.add_member (data: group, user; access_changes)",
    "rbac.member_removed": "rbac.services.remove_member (data: group, user; access_changes)",
    "rbac.scope_created": "rbac.services.save_scope (data: before None, after)",
    "rbac.scope_changed": "rbac.services.save_scope (data: before, after, changes)",
    "rbac.scope_deleted": "rbac.services.delete_scope (data: before, after None)",
    "rbac.resource_created": "rbac.services.save_resource (data: before None, after)",
    "rbac.resource_changed": "rbac.services.save_resource (data: before, after, changes)",
    "rbac.resource_deleted": "rbac.services.delete_resource (data: before, after None)",
    "rbac.permission_created": "rbac.services.save_permission (data: before None, after)",
    "rbac.permission_changed": "rbac.services.save_permission (data: before, after, changes)",
    "rbac.permission_deleted": "rbac.services.delete_permission (data: before, after None)",
    "rbac.role_created": (
        "rbac.services.save_role (data: before None, after, with scopes, resources, permissions; access_changes)"
    ),
    "rbac.role_changed": "rbac.services.save_role (data: before, after, changes; access_changes)",
    "rbac.role_deleted": "rbac.services.delete_role (data: before, after None, bindings_removed; access_changes)",
    "rbac.group_created": "rbac.services.save_group (data: before None, after; access_changes)",
    "rbac.group_changed": "rbac.services.save_group (data: before, after, changes; access_changes)",
    "rbac.group_deleted": (
        "rbac.services.delete_group (data: before, after None, members_removed, roles_removed; access_changes)"
    ),
    "rbac.application_created": "rbac.services.save_application (data: before None, after)",
    "rbac.application_changed": "rbac.services.save_application, also (de)activation (data: before, after, changes)",
    "rbac.application_deleted": "rbac.services.delete_application (data: before, after None, tool_policies_removed)",
    "rbac.tool_policy_created": "rbac.services.save_tool_policy (data: before None, after; access_changes)",
    "rbac.tool_policy_changed": (
        "rbac.services.save_tool_policy, also enable/disable (data: before, after, changes; access_changes)"
    ),
    "rbac.tool_policy_deleted": "rbac.services.delete_tool_policy (data: before, after None; access_changes)",
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
    "oauth.consent_revoked": "oauth.services.revoke_consent (dashboard bulk action: revoke_consents); the client's "
    "tokens go with it",
    "oauth.token_issued": "the token endpoint: code or client credentials (client_id, grant, scope, aud, jti)",
    "oauth.token_refreshed": "the token endpoint: refresh token grant (the refresh token rotates)",
    "oauth.token_revoked_by_admin": "oauth.services.revoke_tokens: the dashboard's revoke action on access or refresh "
    "tokens (one event per token: kind, token_id, client_id, user)",
    "oauth.token_revoked": "the revocation endpoint (RFC 7009)",
    "oauth.ciba_token_issued": "oauth.services.issue_backchannel_token: a CIBA client's token after the user approved "
    "(grant ciba) or after a TOTP code (grant totp) (data: client_id, grant, scope, jti, auth_req_id)",
    "oauth.ciba_client_auth_failed": "oauth.backchannel.authenticate: a CIBA endpoint called without valid client "
    "credentials, or by a client that may not use CIBA (outcome deny; data: client_id, endpoint, reason)",
    "oauth.refresh_reuse_detected": "a rotated refresh token used again: its whole family is revoked (outcome deny)",
    "oauth.client_registered": "dynamic client registration (RFC 7591; data: status active or pending)",
    "oauth.client_approved": "oauth.client_services.set_client_status: dashboard home button or list action "
    "(data: client_id, name, before, after status)",
    "oauth.client_rejected": "oauth.client_services.set_client_status: dashboard home button or list action "
    "(data: client_id, name, before, after status)",
    "oauth.key_created": "oauth.keys.create_signing_key: a tenant's first signing key (private half in Vault)",
    "oauth.key_rotated": "signing-key rotation (hourly task when due, or the dashboard action)",
    "oauth.key_lost": "oauth.keys.signing_key: Vault no longer holds the current key's private half; a new key "
    "replaces it (outcome failure; data: lost, replaced_by)",
    "audit.exported": "a CSV or JSON Lines export from the review pages (data: format, filters)",
    "audit.archived": "the retention job (data: archived range, file, SHA-256, checkpoint hash)",
    "audit.archive_refused": "the retention job when the events due do not verify (outcome failure)",
    "audit.chain_verified": "audit.services.record_verification, after manage.py verify_audit or beat's daily run "
    "(audit.tasks.verify_chains) checked a schema's chain (outcome failure when broken; data: checked, first_seq, "
    "last_seq, head_hash, archives, problems)",
    "audit.sink_dead_lettered": "the SIEM stream, when a sink failed AUDIT_SINK_DEAD_LETTER_AFTER times in a row "
    "(outcome failure; data: sink, kind, failures, error, delivered_to)",
    "audit.sink_recovered": "the SIEM stream, when a dead-lettered sink accepts a batch again (sink, failures)",
    "audit.sink_created": "audit.streaming.services.save_sink (dashboard add; the secret as its Vault version only)",
    "audit.sink_changed": "audit.streaming.services.save_sink (dashboard change; a new secret is a new secret_version)",
    "audit.sink_deleted": "audit.streaming.services.delete_sink (dashboard delete; Vault versions go after commit)",
    "audit.sink_retried": 'the dashboard\'s "Retry now" on SIEM sinks (data: sink, status, failures)',
    "audit.stream_gap": "the SIEM stream, when retention archived events before a sink got them (outcome failure; "
    "data: first_missing, last_missing, archives)",
    "workloads.svid_issued": "workloads.services.issue_svid: dashboard action, renewal task, first use",
    "workloads.svid_issue_failed": "issue_svid when Vault or the SVID files fail (outcome failure; old files kept)",
    "oauth.resource_server_created": "oauth.resource_servers.save_resource_server (dashboard add, "
    "create_resource_server; data: before None, after, client_id)",
    "oauth.resource_server_deleted": "oauth.resource_servers.delete_resource_server (dashboard; client deleted too)",
    "oauth.resource_server_manifest_published": "PUT …/sdk-manifest by the SDK (data: tools, added, removed)",
    "oauth.resource_server_policy_changed": "oauth.resource_servers.policy_changed: a tool mapped, added or removed "
    "(dashboard inline save_tool / delete_tool, map_tool): tool, generation, tool_policy",
    "oauth.resource_server_auth_failed": "sdk-policy / sdk-manifest with wrong credentials (outcome deny)",
    "service.created": "services.services.save_service (dashboard add, create_service, seed_demo; data: service, "
    "before None, after)",
    "service.secret_created": "the first secret version of a service written to Vault (data: vault_version)",
    "service.secret_replaced": "a new secret version from the dashboard (data: vault_version, keys_changed)",
    "service.secret_rotated": "a rotation (Celery or rotate now; data: vault_version, rotation_kind)",
    "service.rotation_failed": "a failed rotation: current version kept (outcome failure; safe error message)",
    "service.read": "ServiceAccessSDK: a tool read a service (outcome allow/deny/failure; service, tool, version)",
    "service.deleted": "services.services.delete_service (dashboard delete; Vault versions go after commit)",
    # --- one write path (issue 20 point 5): the dashboards' writes, each through its app's service function ----
    "accounts.user_created": "accounts.services.save_user: a user added in a dashboard (tenant or platform), or at "
    "first upstream sign-in (data: before None, after; via, subject for upstream)",
    "accounts.user_changed": "accounts.services.save_user: a user page saved, deactivate_user (data: before, after, "
    "changes; roles before/after when the dashboard roles changed)",
    "accounts.user_deleted": "accounts.services.delete_user (dashboard delete, bulk delete; data: before, after None)",
    "accounts.password_changed": "accounts.services.set_user_password: the user admin's password page (data: user, "
    "usable; never the password)",
    "accounts.permission_group_created": "accounts.services.save_permission_group (platform admin's Django groups)",
    "accounts.permission_group_changed": "accounts.services.save_permission_group (data: before, after, changes)",
    "accounts.permission_group_deleted": "accounts.services.delete_permission_group",
    # --- second factors (issue 22 point 4): accounts.services, called by accounts.mfa and its pages (docs/mfa.md)
    "accounts.mfa_totp_enrolled": "accounts.services.enroll_totp: the security page confirmed an authenticator app",
    "accounts.mfa_totp_removed": "accounts.services.remove_totp: the user removed their authenticator app",
    "accounts.mfa_passkey_added": "accounts.services.add_passkey: a WebAuthn credential verified and stored (data: "
    "name, rp_id)",
    "accounts.mfa_passkey_removed": "accounts.services.remove_passkey (data: name, rp_id)",
    "accounts.mfa_recovery_codes_generated": "accounts.services.regenerate_recovery_codes (data: count; never codes)",
    "accounts.mfa_verified": "a second factor accepted: TOTP, passkey or recovery code (data: method; remaining "
    "recovery codes)",
    "accounts.mfa_verification_failed": "a second factor refused (outcome failure; data: method, reason for passkeys)",
    "accounts.mfa_factors_reset": "accounts.services.reset_factors: an admin removed a user's factors (data: user, "
    "counts per kind)",
    "accounts.mfa_settings_created": "accounts.services.save_mfa_settings: the dashboard's add page (data: before "
    "None, after)",
    "accounts.mfa_settings_changed": "accounts.services.save_mfa_settings (data: before, after, changes)",
    "oauth.client_created": "oauth.client_services.save_client: a client added in the dashboard (data: client_id, "
    "before None, after; the secret redacted)",
    "oauth.client_changed": "oauth.client_services.save_client: a client page saved (data: before, after, changes)",
    "oauth.client_deleted": "oauth.client_services.delete_client: dashboard delete, or the client itself (RFC 7592)",
    "oauth.provider_settings_created": "oauth.client_services.save_provider_settings: the dashboard's add page",
    "oauth.provider_settings_changed": "oauth.client_services.save_provider_settings: the dashboard page, "
    "set_dynamic_registration (seed_demo puts the demo tenants' modes back; data: changes)",
    "oauth.upstream_created": "oauth.upstream_services.save_upstream_provider (dashboard add; data: after, "
    "secret_changed, never the secret)",
    "oauth.upstream_changed": "oauth.upstream_services.save_upstream_provider (dashboard; data: changes, "
    "secret_changed)",
    "oauth.upstream_deleted": "oauth.upstream_services.delete_upstream_provider (Vault secret deleted after commit)",
    "oauth.resource_server_changed": "oauth.resource_servers.save_resource_server: name, URI, scopes or activation "
    "changed in the dashboard (data: changes, the generation bumped)",
    "service.changed": "services.services.save_service: a service page saved (data: service, before, after, changes)",
    "workloads.workload_created": "workloads.services.save_workload (dashboard add; data: before None, after)",
    "workloads.workload_changed": "workloads.services.save_workload (dashboard; data: changes)",
    "workloads.workload_deleted": "workloads.services.delete_workload (dashboard delete)",
    "tenant.renamed": "tenants.services.save_tenant: the platform admin's tenant page (data: before, after)",
    "mcp.auth_session_revoked": "mcp_endpoint.services.revoke_auth_sessions: the dashboard's revoke action "
    "(data: application, session hash prefix); the MCP client is notified after commit",
    "audit.settings_changed": "audit.services.save_audit_settings: the retention period (data: changes)",
    # --- approvals: approvals.services (docs/approvals.md); data carries approval_id, kind, application, tool,
    # caller, mode
    "approval.requested": "approvals.services.request_approval: a call or CIBA request waits for approval "
    "(required, approver_role, expires_at)",
    "approval.notified": "approvals.services.mark_notified: approvers told (channels: dashboard, email, webhook)",
    "approval.approval_recorded": "approvals.services.decide: one approval of N recorded (approver, approvals)",
    "approval.approved": "approvals.services.decide: enough approvals (approvers, covers_until)",
    "approval.denied": "approvals.services.decide: an approver denied (approver)",
    "approval.expired": "approvals.services.expire_due: nobody decided in time (beat task)",
    "approval.used": "approvals.services.consume: a call ran on the approval (used_by, use_count, within_window)",
    "approval.settings_changed": "approvals.services.save_settings: notification settings, a new webhook secret "
    "kept in Vault (data: changes, webhook_secret_version)",
    # --- end of the one-write-path block ----------------------------------------------------------------------
}

# Written by features still being built (each adds its kinds above with a scenario when it lands); for the
# MCP endpoint this shape is the contract the review pages' filters and "most denied tools" rely on.
PLANNED_EVENT_KINDS: dict[str, str] = {
    "mcp.tool_call": 'outcome allow/deny; data {"application", "tool", "reason", …} (top-level keys: indexed)',
    "mcp.tools_listed": 'outcome success; data {"application", "count"}',
    "oauth.code_reuse_detected": "an authorization code used twice (outcome deny)",
    "oauth.client_updated": "RFC 7592 client configuration update",
    "mcp.auth_session_started": "oauth_start: a login-tool session created (data: application, session hash prefix)",
    "mcp.auth_session_authenticated": "a login-tool session bound to a user (data: via callback/oauth_authenticate)",
    "mcp.auth_session_logged_out": "oauth_logout",
    "sdkmgr.tools_declared": "the AuthSec SDK declared tools whose requirement differs from the policy row",
    "sdkmgr.cleanup_requested": "the AuthSec SDK's cleanup-sessions at server shutdown (no session ended)",
    "sdkmgr.user_details_read": "/sdkmgr/services/user-details read for a session (no secret in it)",
}
