"""The audit spool (`audit.pipeline.spool`): what a web process journals, and what another adopts once it is dead."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from audit.pipeline.spool import Spool, read_segment, segment_path


def test_a_segment_holds_each_event_and_rotating_starts_the_next(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "db")
    spool.open()
    spool.append(b"one")
    spool.append(b"two")
    assert spool.rotate() == 1
    spool.append(b"three")
    assert read_segment(segment_path(spool.directory, 1)) == [b"one", b"two"]
    assert read_segment(segment_path(spool.directory, 2)) == [b"three"]
    spool.done(1)
    assert not segment_path(spool.directory, 1).exists()
    spool.done(1)  # a batch written twice (sent again to a new audit process) is no error


def test_a_record_cut_short_ends_its_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "db")
    spool.open()
    spool.append(b"whole")
    spool.append(b"cut off")
    path = segment_path(spool.directory, 1)
    os.truncate(path, path.stat().st_size - 3)
    assert read_segment(path) == [b"whole"]


def test_a_live_spool_is_left_alone_and_a_dead_one_is_adopted_once(tmp_path: Path) -> None:
    dead, alive, adopter = Spool(tmp_path, "db"), Spool(tmp_path, "db"), Spool(tmp_path, "db")
    for spool in (dead, alive, adopter):
        spool.open()
    dead.append(b"a")
    dead.rotate()
    dead.append(b"b")
    alive.append(b"mine")
    taken: list[bytes] = []
    os.close(dead.lock_fd)  # its process is gone: the lock goes with it
    assert adopter.adopt(taken.extend) == 2
    assert taken == [b"a", b"b"]
    assert not dead.directory.exists() and alive.directory.exists()
    assert adopter.adopt(taken.extend) == 0


def test_an_inherited_lock_keeps_the_spool_alive(tmp_path: Path) -> None:
    """The audit process holds the web process's lock descriptor: until both are gone nobody adopts."""
    owner, adopter = Spool(tmp_path, "db"), Spool(tmp_path, "db")
    owner.open()
    adopter.open()
    owner.append(b"x")
    child_copy = os.dup(owner.lock_fd)  # what the audit process inherits
    os.close(owner.lock_fd)
    assert adopter.adopt(list().extend) == 0
    os.close(child_copy)
    assert adopter.adopt(list().extend) == 1


def test_spools_of_other_databases_are_never_adopted(tmp_path: Path) -> None:
    other, mine = Spool(tmp_path, "test_db_gw1"), Spool(tmp_path, "test_db_gw0")
    other.open()
    mine.open()
    other.append(b"theirs")
    os.close(other.lock_fd)
    assert mine.adopt(list().extend) == 0
    fd = os.open(other.directory / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still there, free, for a process of its own database
    os.close(fd)


def test_a_clean_close_removes_the_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "db")
    spool.open()
    spool.append(b"x")
    spool.done(spool.rotate())
    spool.close()
    assert not spool.directory.exists()
