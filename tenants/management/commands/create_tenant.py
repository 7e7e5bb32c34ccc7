"""manage.py create_tenant <slug> --name … --admin-email … [--admin-password-file …]"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import create_tenant


class Command(BaseCommand):
    help = "Create a tenant: its schema, its /t/<slug>/ route and its first admin user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="URL slug, e.g. acme (reached at /t/acme/)")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Corp'")
        parser.add_argument("--admin-email", required=True, help="Email of the tenant's first administrator")
        parser.add_argument(
            "--admin-password-file",
            help="Read the admin password from this file ('-' for stdin). Without it you are prompted "
            "on a terminal, or a random password is generated and printed once.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = self._password(options.get("admin_password_file"))
        if password:
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("Admin password rejected: " + " ".join(exc.messages)) from None
        try:
            created = create_tenant(
                actor="cli:create_tenant",
                slug=options["slug"],
                name=options["name"],
                admin_email=options["admin_email"],
                admin_password=password,
                verbosity=max(0, options["verbosity"] - 1),
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        tenant = created.tenant
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} (schema {tenant.schema_name})."))
        self.stdout.write(f"Dashboard: {tenant.url_prefix}admin/  admin: {created.admin.email}")
        if created.generated_password:
            self.stdout.write(f"Generated admin password (shown once): {created.generated_password}")

    def _password(self, source: str | None) -> str | None:
        if source == "-":
            return sys.stdin.readline().rstrip("\n") or None
        if source:
            try:
                return Path(source).read_text().strip() or None
            except OSError as exc:
                raise CommandError(f"Cannot read {source}: {exc.strerror}") from None
        if sys.stdin.isatty():
            first = getpass.getpass("Admin password (empty to generate one): ")
            if first and first != getpass.getpass("Again: "):
                raise CommandError("The two passwords differ.")
            return first or None
        return None
