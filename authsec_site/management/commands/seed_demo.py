"""manage.py seed_demo: the demo tenants and users (idempotent; development only unless --force).

Each run also puts the demo tenants' registration modes back to the demo's (acme open, globex approval)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.roles import DashboardRole
from approvals.demo import seed_approvals
from authsec_site.lib.vault import VaultError
from oauth.client_services import set_dynamic_registration
from oauth.demo import seed_oauth
from oauth.models import ProviderSettings
from rbac.demo import seed_rbac, seed_standard_oauth_application
from services.demo import seed_services
from tenants.models import Tenant
from tenants.services import create_tenant, ensure_public_tenant
from workloads.demo import seed_workloads

PLATFORM_ADMIN = "platform@authsec.test"
DEMO_TENANTS = {
    "acme": {
        "name": "Acme Corp",
        "admin": "admin@acme.test",
        "users": ["alice@acme.test", "bob@acme.test", "carol@acme.test", "dave@acme.test"],
        # Staff with the dashboard role Auditor: reads and exports the audit log, cannot change anything else.
        "auditors": ["auditor@acme.test"],
        # make run binds 127.0.0.1: a first MCP connection must just work (docs/decisions.md).
        "dynamic_registration": ProviderSettings.Registration.OPEN,
    },
    "globex": {
        "name": "Globex Corporation",
        "admin": "admin@globex.test",
        "users": ["erin@globex.test"],
        # As every tenant from create_tenant: registered clients wait for an admin (try the pending page here).
        "dynamic_registration": ProviderSettings.Registration.APPROVAL,
    },
}


class Command(BaseCommand):
    help = "Create the demo tenants (acme, globex) and their users; safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off (never in production).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates users with a known password; it refuses to run with DEBUG off (use --force)."
            )
        password = settings.AUTHSEC_DEMO_PASSWORD
        ensure_public_tenant()
        with transaction.atomic():  # the platform operator, in the public schema
            self._ensure_user(PLATFORM_ADMIN, password, admin=True)
        for slug, spec in DEMO_TENANTS.items():
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                tenant = create_tenant(
                    actor="cli:seed_demo",
                    slug=slug,
                    name=spec["name"],
                    admin_email=spec["admin"],
                    admin_password=password,
                ).tenant
                self.stdout.write(f"created tenant {slug}")
            with schema_context(tenant.schema_name), transaction.atomic():
                self._ensure_user(spec["admin"], password, admin=True)
                for email in spec["users"]:
                    self._ensure_user(email, password, admin=False)
                seed_rbac(slug)
                for email in spec.get("auditors", []):
                    self._ensure_user(email, password, admin=False, staff=True)
                    auditor = User.objects.get(email=email)
                    if DashboardRole.AUDITOR not in auditor.dashboard_roles:
                        auditor.dashboard_roles = [*auditor.dashboard_roles, DashboardRole.AUDITOR]
                        auditor.save(update_fields=["dashboard_roles"])
                seed_oauth()
                seed_standard_oauth_application(slug)
                if slug == "acme":  # human approval of the demo's deploys and sensitive operations
                    seed_approvals(slug)
                mode = spec["dynamic_registration"]
                if set_dynamic_registration.nested(actor="cli:seed_demo", mode=mode):
                    self.stdout.write(f"{slug}: dynamic client registration {mode}")
                seed_workloads(slug)  # SPIFFE demo workloads (SVIDs come from the renewal job)
                try:  # the seed's "GitHub API Integration" (placeholder token, in Vault)
                    seed_services(slug)
                except VaultError as exc:
                    self.stderr.write(f"demo services of {slug} not seeded: {exc}")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))

    def _ensure_user(self, email: str, password: str, *, admin: bool, staff: bool = False) -> None:
        if User.objects.filter(email=email).exists():
            return
        if admin:
            User.objects.create_superuser(email, password)
        else:
            name = email.split("@")[0].capitalize()
            User.objects.create_user(email, password, full_name=name, is_staff=staff)
        self.stdout.write(f"created user {email}")
