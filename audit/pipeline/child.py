"""The audit process of one web process (`audit.pipeline.supervisor.AuditProcess` starts it).

Reads batches of queued audit events from stdin (a header line ``<seq> <length>``, then that many bytes of a
batch in `audit.pipeline.wire`'s format), writes each with `audit.record_many` (retrying, then logging what it
gives up), deletes the batch's spool segment ``<seq>`` (`audit.pipeline.spool`, with ``--spool``) and
acknowledges it on stdout with ``<seq>``. An unreachable database is waited for, as long as it takes: the
batch's segment stays until it is written (and so does the spool's lock, which this process inherited).
It ends when stdin ends, after the last batch, so it outlives neither its web process nor the batches that
process handed over. Interrupts are ignored: Ctrl-C and a group-wide SIGTERM reach the web process, which
closes the pipe when it has flushed.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from typing import Any

NICENESS = 10


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: when CPUs are busy, serving requests comes first and the log catches up in the gaps
    # (a nice-10 process still gets about a tenth of a busy CPU, far more than writing the log needs).
    os.nice(NICENESS)
    # Acknowledgements get a private copy of stdout; anything else printed (logging, warnings) goes to stderr.
    acks = os.fdopen(os.dup(1), "wb", buffering=0)  # unbuffered: one write per acknowledgement
    os.dup2(2, 1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--spool", default="")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "authsec_site.settings")

    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"]["NAME"] = args.database  # before the first connection is made

    import audit.recorder  # noqa: F401 - imported before the freeze below, like everything a write uses
    from audit.pipeline.spool import remove_segment
    from audit.pipeline.wire import decode_batch
    from audit.pipeline.write import write_with_retries

    # Django's start-up objects live as long as the process: keep them out of the collector's full passes.
    # Each batch's short-lived rows trigger young collections, and every so often a full one, which otherwise
    # walked all of them (≈ 120 ms of CPU, in a burst, every ~12,000 events; docs/benchmarks.md).
    gc.freeze()
    stdin = sys.stdin.buffer
    acked = _ack(acks, b"ready")
    while True:
        header = stdin.readline()
        if not header:
            return 0
        seq, length = header.split()
        payload = stdin.read(int(length))
        if len(payload) < int(length):
            return 0  # the web process ended mid-batch: that batch was never complete
        write_with_retries(decode_batch(payload), dedicated=True)
        if args.spool:
            remove_segment(args.spool, int(seq))
        if acked:
            # The web process gone (nobody reads the acknowledgements): still write what it sent, up to EOF.
            acked = _ack(acks, seq)


def _ack(acks: Any, line: bytes) -> bool:
    try:
        acks.write(line + b"\n")
    except BrokenPipeError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
