"""The web process's side of its audit process: starts it, feeds it batches, restarts it when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from django.conf import settings

from audit.pipeline.spool import Spool
from audit.pipeline.wire import decode_batch, mark_adopted, pack_batch, unpack_batch
from authsec_site.lib import metrics

logger = logging.getLogger(__name__)
START_TIMEOUT = 60.0
MAX_RESTARTS = 5  # in a row without a successful start: then the web process writes itself
MAX_UNACKED_EVENTS = 200_000  # beyond this (the audit process stuck) the oldest batch is logged and dropped


class AuditProcess:
    """The web process's audit process (`audit.pipeline.child`): started, fed batches through its stdin,
    acknowledged on its stdout, restarted when it dies (with its unacknowledged batches sent again). With a
    `spool`, a batch's number is its segment's, which the audit process deletes once the batch is written, and
    the audit process holds the spool's lock too (it inherits the descriptor) for as long as it lives."""

    def __init__(self, spool: Spool | None = None) -> None:
        self._spool = spool
        # Batches sent and not yet acknowledged, as sent: (event count, encoded batch). Bytes rather than the
        # events themselves: a batch waits up to an interval and more, and thousands of live event objects
        # kept the web process's garbage collector busy (bytes are not tracked by it).
        self._unacked: dict[int, tuple[int, bytes]] = {}
        self._unacked_events = 0
        self._seq = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._closing = False
        self.gave_up = False
        self.pid: int | None = None

    def send(self, blobs: list[bytes], seq: int | None = None) -> None:
        """Send a batch of encoded events (`wire.encode_event`), numbered `seq` (its spool segment) or next."""
        self._seq = self._seq + 1 if seq is None else seq
        payload = pack_batch(blobs)
        self._unacked[self._seq] = (len(blobs), payload)
        self._unacked_events += len(blobs)
        while self._unacked_events > MAX_UNACKED_EVENTS and len(self._unacked) > 1:
            seq = next(iter(self._unacked))
            count, dropped = self._unacked.pop(seq)
            self._unacked_events -= count
            metrics.AUDIT_EVENTS_DROPPED.inc(count)
            for event in decode_batch(dropped):
                logger.error("Dropping audit event (audit process not keeping up): %s %s", event.action, event.data)
        if self._ready:
            self._write(self._seq, payload)

    def _write(self, seq: int, payload: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"%d %d\n" % (seq, len(payload)) + payload)

    @property
    def backlog(self) -> int:
        """Events sent and not acknowledged yet."""
        return self._unacked_events

    def take_unacked(self) -> list[bytes]:
        """The encoded events of every batch not acknowledged yet (they are no longer this object's to send)."""
        blobs = [blob for _, payload in self._unacked.values() for blob in unpack_batch(payload)]
        self._unacked.clear()
        self._unacked_events = 0
        return blobs

    async def _start(self) -> asyncio.subprocess.Process:
        database = settings.DATABASES["default"]["NAME"]
        spool = ["--spool", str(self._spool.directory)] if self._spool is not None else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "audit.pipeline.child",
            "--database",
            str(database),  # the parent's database (under pytest: the test database, whatever DATABASE_URL says)
            *spool,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(settings.BASE_DIR),
            pass_fds=(self._spool.lock_fd,) if self._spool is not None else (),
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != b"ready\n":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"the audit process did not start (exit code {proc.returncode})")
        return proc

    async def supervise(self) -> None:
        """Keep an audit process running until `close` (give up after `MAX_RESTARTS` failed starts in a row)."""
        failures = 0
        while not self._closing:
            try:
                proc = await self._start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                failures += 1
                logger.error("Audit process: %s (attempt %d)", exc, failures)
                if failures >= MAX_RESTARTS:
                    self.gave_up = True
                    return
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
                continue
            failures = 0
            self._proc, self.pid = proc, proc.pid
            self._ready = True
            for seq, (count, payload) in list(self._unacked.items()):  # what the previous process did not acknowledge
                # Marked adopted: the previous process may have committed it just before it died.
                resent = pack_batch([mark_adopted(blob) for blob in unpack_batch(payload)])
                self._unacked[seq] = (count, resent)
                self._write(seq, resent)
            if self._closing and proc.stdin is not None:
                proc.stdin.close()  # closed while it was starting: it writes the backlog, then exits
            await self._read_acks(proc)
            self._ready = False
            code = await proc.wait()
            if not self._closing:
                logger.error("Audit process %d exited (code %s); starting another", proc.pid, code)

    async def _read_acks(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            try:
                seq = int(line)
            except ValueError:
                logger.error("Audit process said %r", line[:100])
                continue
            batch = self._unacked.pop(seq, None)
            if batch is not None:
                self._unacked_events -= batch[0]

    async def close(self, supervisor: asyncio.Task[None], timeout: float) -> None:
        """End of input: the process writes what it has, acknowledges it and exits; wait for that."""
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), timeout)
        except TimeoutError:
            logger.error("Audit process did not finish within %.0fs; writing the rest here", timeout)
            supervisor.cancel()
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
