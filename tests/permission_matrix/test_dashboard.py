"""The permission matrix of every dashboard page: for each ModelAdmin of the tenant dashboard (/t/<tenant>/admin/)
and of the platform admin (/admin/), its add, changelist, change, history and delete pages, each of its actions and
each view of its own, as anonymous (to the login page), staff without the permission (403), staff with exactly
the permission (200), and the other tenant's admin (302 to this dashboard's login page: that session is no session
here; nor does their own changelist show this tenant's row). `test_every_admin_page_has_a_matrix_row` fails when a
ModelAdmin, an action or a view is added without its row below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group as DjangoGroup
from django.test import Client as TestClient
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context
from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken

import audit
from accounts.models import MfaSettings, User
from approvals.models import ApprovalSettings
from audit.models import AuditCheckpoint, AuditSettings, AuditSink
from authsec_site.admin_sites import platform_admin
from mcp_endpoint.models import AuthSession
from oauth import resource_servers
from oauth.models import Client, Consent, ProviderSettings, SigningKey, UpstreamProvider
from rbac import services as rbac_services
from rbac.models import ToolPin
from tenants.models import Tenant
from tests.factories import (
    ApplicationFactory,
    GroupFactory,
    OAuthClientFactory,
    PermissionFactory,
    ResourceFactory,
    RoleFactory,
    ScopeFactory,
    ToolPolicyFactory,
    UserFactory,
)
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.matrix import PermissionMatrix, grant, revoke_all
from tests.support.services import make_service, unique_secret
from workloads.models import Workload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_grants_cache")]

MARK = "matrix-mark"  # in the name of every row a test makes, so a page showing it is a page showing that row
HOLDER = "matrix-holder@acme.test"
ARE_YOU_SURE = "Are you sure you want to delete the selected"


@dataclass(frozen=True)
class Action:
    permissions: tuple[str, ...] | None  # verbs needed besides view ("change" → <app>.change_<model>); None: no one
    done: str = ""  # on the page after it ran


@dataclass(frozen=True)
class View:
    """A view of the ModelAdmin's own (`get_urls`), by URL name."""

    name: str
    permissions: tuple[str, ...]
    args: Callable[[Any], tuple[Any, ...]] = lambda obj: (quote(obj.pk),)
    query: Callable[[Any], dict[str, str]] | None = None
    method: str = "get"
    expect: int = 200
    not_enough: tuple[str, ...] | None = None  # still refused (403) with only these


@dataclass(frozen=True)
class Pages:
    make: Callable[[], Any]  # the row the pages are about, made in the dashboard's schema
    mark: Callable[[Any], str] | None = None  # how the changelist shows it (None: not checked)
    add: tuple[str, ...] | None = ("add",)  # verbs the add page needs; None: refused even with every permission
    delete: bool = True
    changelist_status: int = 200
    prepare: Callable[[], None] | None = None  # before the add page
    actions: dict[str, Action] = field(default_factory=dict)
    views: tuple[View, ...] = ()


def _holder() -> User:
    return User.objects.filter(email=HOLDER).first() or UserFactory(email=HOLDER)


def _client(**fields: Any) -> Client:
    return OAuthClientFactory(name=f"{MARK} client", **fields)


def _checkpoint() -> AuditCheckpoint:
    return AuditCheckpoint.objects.create(
        seq=9_000_000_000, hash="0" * 64, last_created_at=timezone.now(), first_seq=8_999_999_999,
        first_prev_hash="0" * 64, event_count=2, archive_file=f"/archive/{MARK}.jsonl.gz", archive_sha256="0" * 64,
    )  # fmt: skip


def _drifted_pin() -> ToolPin:
    """A pinned hosted tool whose definition has changed since (waits for review)."""
    policy = ToolPolicyFactory(application=ApplicationFactory(slug=f"{MARK}-pins"), tool_name=f"{MARK}_pinned")
    return ToolPin.objects.create(
        policy=policy, tool_name=policy.tool_name, source=ToolPin.Source.HOSTED,
        pinned_hash="a" * 64, pinned_definition={"name": policy.tool_name, "description": "v1"},
        pinned_at=timezone.now(),
        seen_hash="b" * 64, seen_definition={"name": policy.tool_name, "description": "v2"}, seen_at=timezone.now(),
    )  # fmt: skip


def _no_provider_settings() -> None:
    ProviderSettings.objects.all().delete()


DELETE = {"delete_selected": Action(("delete",), ARE_YOU_SURE)}
NO_DELETE = {"delete_selected": Action(None)}
USER_ADD = ("add", "change")  # Django's UserAdmin: only those who may change users may add one
BY_NAME: Callable[[Any], str] = lambda obj: MARK  # noqa: E731
BY_HOLDER: Callable[[Any], str] = lambda obj: HOLDER  # noqa: E731

AUDIT = {
    "audit.auditevent": Pages(lambda: audit.record("tests", "matrix.mark"), lambda e: "matrix.mark", add=None,
                              delete=False),
    "audit.auditcheckpoint": Pages(_checkpoint, BY_NAME, add=None, delete=False),
    # Its changelist opens the one row.
    "audit.auditsettings": Pages(AuditSettings.load, add=None, delete=False, changelist_status=302, actions=NO_DELETE),
}  # fmt: skip

TENANT: dict[str, Pages] = {
    **AUDIT,
    # Its changelist opens the one row.
    "approvals.approvalsettings": Pages(
        ApprovalSettings.load, add=None, delete=False, changelist_status=302, actions=NO_DELETE
    ),
    "rbac.scope": Pages(lambda: ScopeFactory(name=MARK), BY_NAME, actions=DELETE),
    "rbac.resource": Pages(lambda: ResourceFactory(name=MARK), BY_NAME, actions=DELETE),
    "rbac.permission": Pages(lambda: PermissionFactory(resource=ResourceFactory(name=MARK)), BY_NAME, actions=DELETE),
    "rbac.role": Pages(lambda: RoleFactory(name=MARK), BY_NAME, actions=DELETE),
    "rbac.group": Pages(lambda: GroupFactory(name=MARK), BY_NAME, actions=DELETE),
    "rbac.rolebinding": Pages(
        lambda: rbac_services.grant_role(actor="tests", role=RoleFactory(name=MARK), user=_holder()),
        BY_NAME,
        actions=DELETE,
    ),
    "rbac.groupmembership": Pages(
        lambda: rbac_services.add_member(actor="tests", group=GroupFactory(name=MARK), user=_holder()),
        BY_NAME,
        actions=DELETE,
    ),
    "rbac.toolpolicy": Pages(
        lambda: ToolPolicyFactory(application=ApplicationFactory(slug=MARK), tool_name="matrix_mark"),
        lambda policy: "matrix_mark",
        actions={
            **DELETE,
            "disable": Action(("change",), "Disabled 1 tool policies."),
            "enable": Action(("change",), "Enabled 1 tool policies."),
        },
    ),
    "rbac.application": Pages(
        lambda: ApplicationFactory(slug=MARK),
        BY_NAME,
        actions={
            **DELETE,
            "deactivate": Action(("change",), "Deactivated 1 applications."),
            "activate": Action(("change",), "Activated 1 applications."),
        },
        views=(
            View("rbac_simulator", ("rbac.view_toolpolicy",), lambda app: (), lambda app: {"application": app.slug}),
            # Simulating a user shows that user's grants: it needs the permission to view users, as in the API.
            View(
                "rbac_simulator",
                ("rbac.view_toolpolicy", "accounts.view_user"),
                lambda app: (),
                lambda app: {"application": app.slug, "user": "admin@acme.test"},
                not_enough=("rbac.view_toolpolicy",),
            ),
            # Connect a client: the page, and its Test (a POST; the test client's endpoint is unreachable, so
            # the steps are red, but the page answers).
            View("rbac_application_connect", ("rbac.view_application",), not_enough=("rbac.view_toolpolicy",)),
            View("rbac_application_connect", ("rbac.view_application",), method="post"),
            # The user × tool matrix shows every user's decisions: it needs the permission to view users too.
            View(
                "rbac_application_matrix",
                ("rbac.view_application", "accounts.view_user"),
                not_enough=("rbac.view_application",),
            ),
            View(
                "rbac_application_matrix_csv",
                ("rbac.view_application", "accounts.view_user"),
                not_enough=("rbac.view_application",),
            ),
        ),
    ),
    "accounts.user": Pages(
        lambda: UserFactory(email=f"{MARK}@acme.test"),
        BY_NAME,
        add=USER_ADD,
        actions={**DELETE, "reset_second_factors": Action(("change",), "Reset the second factors of 1 user(s).")},
        views=(
            View(
                "rbac_effective_permissions",
                ("accounts.view_user", "rbac.view_toolpolicy"),
                not_enough=("accounts.view_user",),
            ),
            View("auth_user_password_change", ("accounts.change_user",), not_enough=("accounts.view_user",)),
        ),
    ),
    "oauth.resourceserver": Pages(
        lambda: resource_servers.create_resource_server(
            actor="tests",
            name=MARK,
            resource_uri=f"https://{MARK}.example.test/mcp",
            client_secret=resource_servers.new_client_secret(),
        )[0],
        BY_NAME,
        actions=DELETE,
    ),
    "oauth.consent": Pages(
        lambda: Consent.objects.create(user=_holder(), client=_client(), scopes=["openid"]),
        BY_HOLDER,
        add=None,
        delete=False,  # revoked, not deleted: the row keeps who consented to what and when it ended
        actions={**NO_DELETE, "revoke": Action(("change",), "consent(s) revoked.")},
    ),
    "oauth.signingkey": Pages(
        lambda: SigningKey.objects.filter(retired_at__isnull=True).get(),
        lambda key: key.kid,
        add=None,
        delete=False,
        actions={**NO_DELETE, "rotate_now": Action(("change",), "is current.")},
    ),
    "accounts.mfasettings": Pages(
        lambda: MfaSettings.objects.create(),
        # The add page while the tenant has none (it has one row at most).
        delete=False,
        prepare=lambda: MfaSettings.objects.all().delete(),  # type: ignore[func-returns-value]
        actions=NO_DELETE,
    ),
    "oauth.providersettings": Pages(
        ProviderSettings.current,
        # The add page while the tenant has none (it has one row at most).
        delete=False,
        prepare=_no_provider_settings,
        actions=NO_DELETE,
    ),
    "oauth.upstreamprovider": Pages(
        lambda: UpstreamProvider.objects.create(
            name=MARK, slug=MARK, issuer="https://id.example.test", client_id="matrix"
        ),
        BY_NAME,
        actions=DELETE,
    ),
    "oauth.client": Pages(
        lambda: _client(status=Client.Status.PENDING),
        BY_NAME,
        actions={
            **DELETE,
            "approve": Action(("change",), "1 client(s) now active."),
            "reject": Action(("change",), "1 client(s) now rejected."),
        },
        views=(
            View(
                "oauth_client_approve",
                ("oauth.change_client",),
                method="post",
                expect=302,
                not_enough=("oauth.view_client",),
            ),
            View(
                "oauth_client_reject",
                ("oauth.change_client",),
                method="post",
                expect=302,
                not_enough=("oauth.view_client",),
            ),
        ),  # fmt: skip
    ),
    "services.service": Pages(
        lambda: make_service(
            {"api_key": unique_secret()},
            name=MARK,
            service_type="api_key",
            rotation_kind="generated",
            rotation_config={"length": 32},
        ),
        BY_NAME,
        actions={**DELETE, "rotate_now": Action(("rotate",), f"Rotated {MARK} to version 2.")},
    ),
    "audit.auditsink": Pages(
        lambda: AuditSink.objects.create(name=MARK, kind="syslog", host="127.0.0.1", port=6514),
        BY_NAME,
        actions={**DELETE, "retry_now": Action(("change",), "Delivery queued for 1 sink(s).")},
    ),
    "rbac.toolpin": Pages(
        _drifted_pin,
        lambda pin: pin.tool_name,
        add=None,
        delete=False,
        actions=NO_DELETE,
        views=(
            View(
                "rbac_toolpin_mode",
                ("rbac.change_toolpin",),
                args=lambda pin: (),
                method="post",
                expect=302,
                not_enough=("rbac.view_toolpin",),
            ),
        ),
    ),
    "workloads.workload": Pages(
        # Disabled: the action runs and refuses to issue, so no SVID files are written.
        lambda: Workload.objects.create(name=MARK, spiffe_path="/matrix/mark", is_enabled=False),
        BY_NAME,
        actions={**DELETE, "issue_now": Action(("change",), f"No SVID issued for {MARK}")},
    ),
}

PLATFORM: dict[str, Pages] = {
    **AUDIT,
    "tenants.tenant": Pages(
        lambda: Tenant.objects.get(slug="globex"),
        lambda tenant: "Globex Corporation",
        delete=False,
        actions={
            **NO_DELETE,
            "deactivate": Action(("change",), "Deactivated 1 tenant(s)."),
            "activate": Action(("change",), "Activated 1 tenant(s)."),
        },
    ),
    "accounts.user": Pages(
        lambda: UserFactory(email=f"{MARK}@platform.test"),
        BY_NAME,
        add=USER_ADD,
        delete=False,  # deactivated instead: the cascade would reach tables the public schema lacks
        actions=NO_DELETE,
        views=(View("auth_user_password_change", ("accounts.change_user",), not_enough=("accounts.view_user",)),),
    ),
    "auth.group": Pages(lambda: DjangoGroup.objects.create(name=MARK), BY_NAME, actions=DELETE),
}

SITES = {admin.site.name: (admin.site, TENANT), platform_admin.name: (platform_admin, PLATFORM)}


def _url(matrix: PermissionMatrix, site: admin.AdminSite, name: str, *args: Any) -> str:
    # Each request clears Django's URL caches (django-tenants' subfolder routing), so a test reverses its URLs
    # together, between requests, rather than one before each request.
    if matrix.tenant.is_public:
        return reverse(f"{site.name}:{name}", args=args, urlconf=settings.PUBLIC_SCHEMA_URLCONF)
    return matrix.tenant.url_prefix.rstrip("/") + reverse(f"{site.name}:{name}", args=args)


def _refused_even_with(matrix: PermissionMatrix, url: str, permissions: list[str]) -> None:
    revoke_all(matrix.tenant, matrix.staff_user)
    grant(matrix.tenant, matrix.staff_user, permissions)
    status = matrix.staff.get(url).status_code
    assert status == 403, f"{url} with {permissions}: {status}"


def _check_model(matrix: PermissionMatrix, site: admin.AdminSite, label: str, pages: Pages, other: Tenant) -> None:
    app, model = label.split(".")

    def perm(verb: str) -> str:
        return f"{app}.{verb}_{model}"

    every = [perm(verb) for verb in ("view", "add", "change", "delete")]
    changelist = _url(matrix, site, f"{app}_{model}_changelist")
    add = _url(matrix, site, f"{app}_{model}_add")
    if pages.prepare is not None:
        with schema_context(matrix.tenant.schema_name):
            pages.prepare()
    if pages.add is not None:
        matrix.check(add, [perm(verb) for verb in pages.add])
    else:
        _refused_even_with(matrix, add, every)
    with schema_context(matrix.tenant.schema_name):
        obj = pages.make()
    views = [
        (
            view,
            _url(matrix, site, view.name, *view.args(obj)) + (f"?{urlencode(view.query(obj))}" if view.query else ""),
        )
        for view in pages.views
    ]
    listing = matrix.check(changelist, [perm("view")], expect=pages.changelist_status)
    if pages.mark is not None:
        assert pages.mark(obj) in listing.content.decode(), f"{changelist} does not list the row"
        if not matrix.tenant.is_public:  # the other tenant's admin, at their own changelist
            theirs = matrix.other_admin.get(changelist.replace(matrix.tenant.url_prefix, other.url_prefix, 1))
            assert theirs.status_code == pages.changelist_status
            assert pages.mark(obj) not in theirs.content.decode(), f"{other.slug} lists {matrix.tenant.slug}'s row"
    pk = quote(obj.pk)  # the object pages are <changelist><pk>/<page>/ (django.contrib.admin.options.get_urls)
    for page in ("change", "history"):
        matrix.check(f"{changelist}{pk}/{page}/", [perm("view")])
    if pages.delete:
        matrix.check(f"{changelist}{pk}/delete/", [perm("delete")])
    else:
        _refused_even_with(matrix, f"{changelist}{pk}/delete/", every)
    for number, (name, action) in enumerate(pages.actions.items()):
        needed = None if action.permissions is None else [perm(verb) for verb in action.permissions]
        matrix.check_action(changelist, name, obj.pk, [perm("view")], needed, action.done, gate=number == 0)
    for view, url in views:
        matrix.check(url, view.permissions, method=view.method, expect=view.expect)
        if view.not_enough is not None:
            revoke_all(matrix.tenant, matrix.staff_user)
            grant(matrix.tenant, matrix.staff_user, view.not_enough)
            status = getattr(matrix.staff, view.method)(url).status_code
            assert status == 403, f"{url} with only {list(view.not_enough)}: {status}"


@pytest.mark.parametrize("label", TENANT)
def test_tenant_dashboard_pages(label: str, acme: Tenant, globex: Tenant) -> None:
    _check_model(PermissionMatrix.of(acme, globex), admin.site, label, TENANT[label], globex)


@pytest.mark.parametrize("label", PLATFORM)
def test_platform_admin_pages(label: str, acme: Tenant) -> None:
    public = Tenant.objects.get(schema_name="public")
    _check_model(PermissionMatrix.platform(public, acme), platform_admin, label, PLATFORM[label], acme)


# --- the registry: a ModelAdmin, an action or a view without a row above fails here ---------------------------


def _standard_urls(model_admin: admin.ModelAdmin) -> set[str]:
    info = (model_admin.opts.app_label, model_admin.opts.model_name)
    return {f"{info[0]}_{info[1]}_{page}" for page in ("changelist", "add", "history", "delete", "change")}


def _registered(site: admin.AdminSite) -> dict[str, tuple[set[str], set[str]]]:
    """Each model's label with the names of its actions and of its own views, as the site serves them."""
    found = {}
    for model, model_admin in site._registry.items():  # noqa: SLF001 - the registry is what the site serves
        actions = set()
        if model_admin.actions is not None:
            actions = {name for _func, name, _desc in model_admin._get_base_actions()}  # noqa: SLF001
        views = {url.name for url in model_admin.get_urls() if url.name} - _standard_urls(model_admin)
        found[model._meta.label_lower] = (actions, views)
    return found


@pytest.mark.parametrize("site_name", SITES)
def test_every_admin_page_has_a_matrix_row(site_name: str) -> None:
    site, rows = SITES[site_name]
    covered = {label: (set(pages.actions), {view.name for view in pages.views}) for label, pages in rows.items()}
    assert _registered(site) == covered


@pytest.mark.parametrize("model", [AccessToken, RefreshToken, Grant, IDToken, AuthSession])
def test_dots_raw_token_tables_are_not_on_the_dashboard(model: type, acme: Tenant) -> None:
    """Issue 25 point 6: the "Tokens & sessions" page (tests/permission_matrix/test_tokens_page.py) replaces them. MCP
    login sessions too: a changelist names rows by primary key, and a session's id is its client's bearer secret."""
    assert not admin.site.is_registered(model)
    url = f"/t/acme/admin/{model._meta.app_label}/{model._meta.model_name}/"
    assert log_in(acme, "admin@acme.test", ADMIN_PASSWORD).get(url).status_code == 404


def test_the_outsider_session_is_anonymous_here(acme: Tenant, globex: Tenant) -> None:
    """The premise of the "other tenant" column: the test client sends every cookie to every path, as a browser
    would not (cookies are scoped to /t/<tenant>/), and the other tenant's session still counts for nothing."""
    outsider = PermissionMatrix.of(acme, globex).other_admin
    assert outsider.cookies  # signed in somewhere
    assert outsider.get("/t/globex/admin/").status_code == 200
    assert outsider.get("/t/acme/admin/").status_code == 302
    assert TestClient().get("/t/acme/admin/").status_code == 302
