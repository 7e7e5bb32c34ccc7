"""`manage.py spiffe_watch`: keep the platform's SVID files current from the SPIRE agent until stopped."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workloads.spire import WorkloadApiError, close_all, platform_identity


class Command(BaseCommand):
    help = "Follow the SPIRE agent's Workload API stream and write the platform's SVID under <SVID_DIR>/_platform/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--socket", default="", help="Workload API socket (default: SPIFFE_ENDPOINT_SOCKET).")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for the first SVID.")

    def handle(self, *args: Any, **options: Any) -> None:
        socket = options["socket"] or settings.SPIFFE_ENDPOINT_SOCKET
        if not socket:
            raise CommandError("No Workload API socket: pass --socket or set SPIFFE_ENDPOINT_SOCKET.")
        try:
            identity = platform_identity(socket, timeout=options["timeout"])
        except WorkloadApiError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Writing the platform SVID to {identity.files.directory} (Ctrl-C to stop).")
        try:
            while not identity.is_closed:
                time.sleep(1)
            raise CommandError(f"The Workload API stream ended: {identity.last_error or 'closed'}")
        except KeyboardInterrupt:
            pass
        finally:
            close_all()
