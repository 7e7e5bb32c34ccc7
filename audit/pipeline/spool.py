"""The web process's journal of queued audit events: what makes `audit.enqueue` survive a SIGKILL.

Every event `audit.enqueue`d is also appended to a segment file of this process's spool directory
(``<AUDIT_SPOOL_DIR>/<database>/<node id>/``) with one ``write(2)``, before the caller returns, so before the
answer of its request leaves. A ``write`` is in the kernel's page cache once it returns: a SIGKILL of the web
process, of its audit process or of both cannot take it back (a power loss can: segments are not fsync'd).
Each flush closes the current segment and starts the next one; the segment's number is the batch's number on
the pipe, and whoever writes the batch to the log (the audit process, or the writer thread) deletes the
segment after the commit. So what is left in a spool directory is what was queued and not yet written, or
(a crash between a commit and the deletion) a batch just written: adopted events are marked
(`wire.mark_adopted`), and their writer skips those already in the log (`write`).

The directory is held by an exclusive ``flock`` on its ``lock`` file, shared with the audit process (which
inherits the descriptor): the lock is free only once both are gone. A process that finds a free lock in a
sibling directory (at start and every `ADOPT_INTERVAL` seconds) adopts it: it appends those events to its own
journal and queue, then removes the directory. Nodes that share a spool root (one machine, one volume) thus
write each other's leftovers; a node restarted on its own disk writes its own.

A segment is a sequence of records: a 4-byte big-endian length, then an event as `wire.encode_event` made it.
A record cut short (only a power loss can do that) ends the segment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)
ADOPT_INTERVAL = 2.0  # seconds between looks for the spools of dead processes
_LENGTH = struct.Struct(">I")
_SEGMENT_SUFFIX = ".seg"


def segment_path(directory: str | Path, seq: int) -> Path:
    return Path(directory) / f"{seq:012d}{_SEGMENT_SUFFIX}"


def read_segment(path: Path) -> list[bytes]:
    """The encoded events of one segment (a record cut short ends it)."""
    data = path.read_bytes()
    blobs, at = [], 0
    while at + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + length > len(data):
            logger.error("Audit spool segment %s ends in a cut record (%d bytes lost)", path, len(data) - at)
            break
        blobs.append(data[at : at + length])
        at += length
    return blobs


def remove_segment(directory: str | Path, seq: int) -> None:
    """Delete a segment whose events are in the log (gone already: a batch sent twice)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(segment_path(directory, seq))


class Spool:
    """One web process's spool directory: its current segment, its lock, and the adoption of dead ones."""

    def __init__(self, root: str | Path, database: str) -> None:
        self.parent = Path(root) / _safe(database)
        self.directory = self.parent / uuid.uuid4().hex
        self.lock_fd = -1
        self.seq = 0
        self._fd = -1

    def open(self) -> None:
        # Made under a hidden name and renamed once locked: an adopter never sees it unlocked.
        making = self.parent / f".{self.directory.name}"
        making.mkdir(parents=True, mode=0o700)
        self.lock_fd = os.open(making / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        making.rename(self.directory)
        self._next_segment()

    def _next_segment(self) -> None:
        self.seq += 1
        path = segment_path(self.directory, self.seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, blob: bytes) -> None:
        """Journal one encoded event (one ``write``: in the page cache when this returns)."""
        os.write(self._fd, _LENGTH.pack(len(blob)) + blob)

    def rotate(self) -> int:
        """Close the current segment and start the next; the closed segment's number (its batch's)."""
        seq = self.seq
        os.close(self._fd)
        self._next_segment()
        return seq

    def done(self, seq: int) -> None:
        remove_segment(self.directory, seq)

    def done_before_current(self) -> None:
        """Every closed segment is in the log (written here after the audit process gave up)."""
        for seq in range(1, self.seq):
            remove_segment(self.directory, seq)

    def close(self) -> None:
        """Clean shutdown, everything written: remove the directory (a segment still there stays for adoption)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        remove_segment(self.directory, self.seq)
        leftovers = list(self.directory.glob(f"*{_SEGMENT_SUFFIX}"))
        if not leftovers:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            logger.error(
                "Audit spool %s keeps %d unwritten segments for the next start", self.directory, len(leftovers)
            )
        os.close(self.lock_fd)  # the lock goes with it
        self.lock_fd = -1

    def adopt(self, take: Callable[[list[bytes]], None]) -> int:
        """Hand the events left in the spools of dead processes to `take` (which journals and queues them), then
        remove those directories; how many events were adopted."""
        adopted = 0
        try:
            siblings = [
                path
                for path in self.parent.iterdir()
                if path.is_dir() and path != self.directory and not path.name.startswith(".")
            ]
        except FileNotFoundError:
            return adopted
        for directory in siblings:
            try:
                fd = os.open(directory / "lock", os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # being created, or being removed by its owner
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # alive
                segments = sorted(directory.glob(f"*{_SEGMENT_SUFFIX}"))
                found = [blob for segment in segments for blob in read_segment(segment)]
                if found:
                    logger.warning("Adopting %d audit events of a dead process from %s", len(found), directory)
                    take(found)  # in our own journal before theirs goes
                    adopted += len(found)
                shutil.rmtree(directory, ignore_errors=True)
            finally:
                os.close(fd)
        return adopted


def _safe(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name) or "default"
