"""What each page of the tenant dashboard is for, and how a row gets there: shown under each model page's title and
as the friendly empty state of a changelist with no rows (templates/admin/change_list.html, change_form.html).

Keyed by model label ("app_label.model_name"); every model either admin site serves has an entry
(tests/authsec_site/test_dashboard_help.py). Plain text: the templates escape it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelHelp:
    what: str  # one or two sentences: what a row is and why an admin would care
    how_to_add: str  # how a row comes to be (the Add button, another page, or the server itself)


HELP: dict[str, ModelHelp] = {
    # Access
    "accounts.user": ModelHelp(
        "People who sign in to this tenant: the end users of your MCP applications and the staff of this dashboard.",
        "Press “Add user”. Give dashboard roles on the user's page, RBAC roles under Role bindings.",
    ),
    "rbac.role": ModelHelp(
        "Named sets of rights (for example admin, developer, analyst) that tool policies require.",
        "Press “Add role”, then grant it to users under Role bindings or to a group on the group's page.",
    ),
    "rbac.group": ModelHelp(
        "Groups of users: every role a group holds counts for each of its members.",
        "Press “Add group”, then add members under Group memberships.",
    ),
    "rbac.scope": ModelHelp(
        "OAuth scopes (for example read, write) that clients ask for and tool policies may require.",
        "Press “Add scope”; clients can ask for it from then on.",
    ),
    "rbac.resource": ModelHelp(
        "Things your permissions are about (for example production, billing); a tool policy may require one.",
        "Press “Add resource”, then add permissions on it.",
    ),
    "rbac.permission": ModelHelp(
        "An action on a resource (written resource:action), held through roles.",
        "Press “Add permission”, then attach it to roles.",
    ),
    "rbac.rolebinding": ModelHelp(
        "Which user holds which role directly (roles held through a group are under Groups).",
        "Press “Add role binding”, or choose roles on a user's page.",
    ),
    "rbac.groupmembership": ModelHelp(
        "Which user belongs to which group.",
        "Press “Add group membership”.",
    ),
    # Applications & tools
    "rbac.application": ModelHelp(
        "The MCP applications this tenant hosts, each at /t/<tenant>/mcp/<slug>, with the tools each one serves.",
        "Press “Add application” and tick the tools it serves; its “Connect a client” page gives each client's set-up.",
    ),
    "rbac.toolpolicy": ModelHelp(
        "Who may call each tool of an application: the roles, groups, scopes, resources or permissions it requires. "
        "A tool without a policy is denied.",
        "Policies are made when an application starts serving a tool (on the application's page); "
        "add one by hand for a tool your own code serves.",
    ),
    "rbac.toolpin": ModelHelp(
        "The pinned definition of each served tool. A tool whose definition changed waits here for review.",
        "Pins are made when a tool is first served; none are added by hand.",
    ),
    "approvals.approvalsettings": ModelHelp(
        "How approvers hear of a sensitive tool call waiting for them: email, and a signed webhook.",
        "Press “Add approval settings” once; until then approvers are emailed and no webhook is called.",
    ),
    # Clients & sign-in
    "oauth.client": ModelHelp(
        "OAuth clients (MCP clients, web apps, background jobs) that sign users in or call this tenant's APIs.",
        "Press “Add client”, or let clients register themselves (dynamic registration, under OAuth settings).",
    ),
    "oauth.consent": ModelHelp(
        "What each user allowed a client to do. Revoking a consent ends that client's tokens for the user.",
        "Users give consent when a client first asks; none are added here.",
    ),
    "oauth.upstreamprovider": ModelHelp(
        "Outside identity providers (OpenID Connect, GitHub) your users may sign in with.",
        "Press “Add upstream provider” with the client id and secret it gave you; its button appears on the login "
        "page.",
    ),
    "accounts.mfasettings": ModelHelp(
        "Whether dashboard staff must prove a second factor (TOTP, passkey or recovery code) before it opens.",
        "Press “Add MFA settings” once; until then a second factor is optional.",
    ),
    "oauth.resourceserver": ModelHelp(
        "MCP servers outside this platform that check this tenant's tokens through the AuthSec SDK, and the policy "
        "of their tools.",
        "Press “Add resource server”; its page shows the introspection credentials for the SDK.",
    ),
    "oauth.providersettings": ModelHelp(
        "This tenant's OAuth issuer settings, such as whether clients may register themselves.",
        "Press “Add provider settings” once; until then the server's defaults apply.",
    ),
    "oauth.signingkey": ModelHelp(
        "The keys that sign this tenant's tokens. Private halves live only in Vault; the JWKS publishes the public "
        "ones.",
        "The first key is made with the tenant and rotation adds the next; none are added by hand.",
    ),
    # Services & secrets
    "services.service": ModelHelp(
        "External services whose credentials your tools use through ServiceAccessSDK. Credentials live only in "
        "Vault, never in the database or on a page.",
        "Press “Add service” and enter its credentials; rotation can replace them on a schedule.",
    ),
    # Workloads
    "workloads.workload": ModelHelp(
        "SPIFFE workloads of this tenant's trust domain. Each gets X.509-SVIDs, renewed before they expire.",
        "Press “Add workload” with its SPIFFE path.",
    ),
    # Audit
    "audit.auditevent": ModelHelp(
        "Every change and sign-in in this tenant, append-only and hash-chained so that a gap or an edit shows.",
        "The server writes events as things happen; nothing is added or changed here.",
    ),
    "audit.auditsink": ModelHelp(
        "SIEM destinations (syslog, webhook, OpenTelemetry) the audit log is streamed to, in order.",
        "Press “Add audit sink” with its address; delivery starts from the oldest event kept.",
    ),
    "audit.auditsettings": ModelHelp(
        "How long audit events stay in the database before they are archived.",
        "Press “Add audit settings” once; until then the default retention applies.",
    ),
    "audit.auditcheckpoint": ModelHelp(
        "Where archived events end: the chain's state when retention moved older events to an archive file.",
        "Written by the retention job; none are added by hand.",
    ),
    # The platform admin (/admin/)
    "tenants.tenant": ModelHelp(
        "The tenants of this server: each has its own schema, issuer, users and dashboard at /t/<slug>/admin/.",
        "Press “Add tenant”; its first admin is made with it.",
    ),
    "auth.group": ModelHelp(
        "Django's permission groups of the platform admin (tenant dashboards use dashboard roles instead).",
        "Press “Add group” and choose its permissions.",
    ),
}


def help_for(label: str) -> ModelHelp | None:
    return HELP.get(label)
