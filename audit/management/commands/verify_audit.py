"""manage.py verify_audit <tenant>: verify a tenant's audit hash chain; exit 1 at the first broken event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django_tenants.utils import get_tenant_model, schema_context

from audit.models import AuditCheckpoint
from audit.retention import verify_archive
from audit.verify import verify_chain


class Command(BaseCommand):
    help = "Verify the audit hash chain of a tenant (slug or schema name; 'public' for the platform)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="Tenant slug (e.g. acme), schema name, or 'public'.")
        parser.add_argument(
            "--archives", action="store_true", help="Also re-check every archive file the checkpoints name."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["tenant"]
        tenant = get_tenant_model().objects.filter(Q(slug=name) | Q(schema_name=name)).first()
        if tenant is None:
            raise CommandError(f"No tenant {name!r}.")
        with schema_context(tenant.schema_name):
            report = verify_chain(progress=lambda n: self.stderr.write(f"… {n:,} events verified"))
            problems = [] if report.ok else [report.summary()]
            if options["archives"]:
                for checkpoint in AuditCheckpoint.objects.order_by("seq"):
                    path = Path(checkpoint.archive_file)
                    if not path.is_file():
                        problems.append(
                            f"BROKEN: archive of events {checkpoint.first_seq}..{checkpoint.seq} missing: {path}"
                        )
                        continue
                    archive = verify_archive(path, checkpoint)
                    line = f"archive {path.name}: {archive.event_count} events"
                    if archive.ok:
                        self.stdout.write(f"OK: {line} ({archive.first_seq}..{archive.last_seq})")
                    else:
                        problems.append(f"BROKEN: {line}: {archive.error}")
        if problems:
            raise CommandError("\n".join(problems), returncode=1)
        self.stdout.write(self.style.SUCCESS(report.summary()))
