"""`scripts/backup.py` refuses what would make a half or a wrong backup or restore, before it does anything.

The full save-and-restore round trip is tests/operations/test_backup_restore.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.support.databases import Databases
from tests.support.live import ROOT


@pytest.fixture
def databases() -> Iterator[Databases]:
    made = Databases()
    yield made
    made.drop_all()


def backup(command: str, directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/backup.py", command, str(directory)],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def fake_backup(directory: Path, database_url: str) -> None:
    """A backup directory as `save` writes it, with a real dump of an empty database and a stand-in snapshot."""
    directory.mkdir()
    subprocess.run(
        ["pg_dump", "--format=custom", "--file", str(directory / "postgres.dump"), "--dbname", database_url], check=True
    )
    (directory / "openbao.snap").write_bytes(b"not a snapshot")
    files = {
        name: {"sha256": hashlib.sha256((directory / name).read_bytes()).hexdigest(), "bytes": 0}
        for name in ("postgres.dump", "openbao.snap")
    }
    manifest = {"format": "authsec-backup/1", "postgres": {"schemas": ["public"]}, "files": files}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_save_refuses_a_dev_server_before_dumping_anything(tmp_path: Path, databases: Databases) -> None:
    # The suite's OpenBao (settings.VAULT_ADDR) is a dev server: in-memory storage, which no snapshot can hold.
    dev = {"VAULT_ADDR": settings.VAULT_ADDR, "VAULT_TOKEN": settings.VAULT_TOKEN}
    result = backup("save", tmp_path / "b", DATABASE_URL=databases.create("backup_dev"), **dev)
    assert result.returncode == 1
    assert "uses 'inmem' storage, not raft" in result.stderr and "nothing can be backed up" in result.stderr
    assert list((tmp_path / "b").iterdir()) == []


def test_save_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "older-backup.dump").write_bytes(b"x")
    result = backup("save", tmp_path, DATABASE_URL="postgres://nobody@127.0.0.1:1/never-reached")
    assert result.returncode == 1 and "is not empty: give each backup a directory of its own" in result.stderr


def test_restore_refuses_a_database_that_has_tables(tmp_path: Path, databases: Databases) -> None:
    fake_backup(tmp_path / "b", databases.create("backup_empty"))
    target = databases.create("backup_in_use")
    with psycopg.connect(target.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (id int)")
    result = backup("restore", tmp_path / "b", DATABASE_URL=target)
    assert result.returncode == 1
    assert "is not empty (1 tables): restore into a new database" in result.stderr
    with psycopg.connect(target.replace("postgres://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM precious").fetchone() == (0,)


def test_check_finds_a_file_changed_since_the_backup(tmp_path: Path, databases: Databases) -> None:
    fake_backup(tmp_path / "b", databases.create("backup_empty"))
    assert backup("check", tmp_path / "b").returncode == 0
    (tmp_path / "b" / "openbao.snap").write_bytes(b"tampered")
    result = backup("check", tmp_path / "b")
    assert result.returncode == 1 and "openbao.snap does not match its checksum" in result.stderr
