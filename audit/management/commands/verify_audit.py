"""manage.py verify_audit <tenant> | --all: verify audit hash chains; exit 1 when any chain is broken.

Each schema's result is recorded in its own log (`audit.chain_verified`), which the dashboard home shows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django_tenants.utils import get_tenant_model

from audit.services import verify_and_record


class Command(BaseCommand):
    help = (
        "Verify the audit hash chain of a tenant (slug or schema name; 'public' for the platform), "
        "or with --all of the platform and every tenant (after a restore: docs/operations.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", nargs="?", help="Tenant slug (e.g. acme), schema name, or 'public'.")
        parser.add_argument("--all", action="store_true", help="Every schema: the public one and each tenant's.")
        parser.add_argument(
            "--archives", action="store_true", help="Also re-check every archive file the checkpoints name."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name, every = options["tenant"], options["all"]
        if bool(name) == every:
            raise CommandError("Name one tenant, or give --all.")
        tenants = get_tenant_model().objects.order_by("schema_name")
        if not every:
            tenants = tenants.filter(Q(slug=name) | Q(schema_name=name))
            if not tenants.exists():
                raise CommandError(f"No tenant {name!r}.")
        problems: list[str] = []
        for tenant in tenants:  # inactive tenants too: their logs are kept and must still verify
            problems += self._verify(tenant.schema_name, archives=options["archives"])
        if problems:
            raise CommandError("\n".join(problems), returncode=1)

    def _verify(self, schema_name: str, *, archives: bool) -> list[str]:
        """Verify one schema; print its OK lines, return its problems."""
        report, problems = verify_and_record(
            schema_name,
            archives=archives,
            progress=lambda n: self.stderr.write(f"… {n:,} events verified"),
            archive_ok=self.stdout.write,
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS(report.summary()))
        return problems
