"""Backup and restore onto a fresh stack, as docs/operations.md tells an operator to do it.

A source stack (its own database, its own OpenBao with raft storage, its own Redis, the app under uvicorn) gets
users, a registered client with an issued refresh token, a service secret in Vault and audit events. It is backed
up with `scripts/backup.py save` (pg_dump + `bao operator raft snapshot save`), then destroyed: the database is
dropped, OpenBao and Redis are stopped. The backup is restored with `scripts/backup.py restore` into a NEW database
and a NEW OpenBao (initialised with keys of its own, then unsealed with the source's keys, as the runbook says), and
the app runs on it with an empty Redis, at the same public URL. There a user signs in, the old refresh token works,
the service secret reads back through `list_my_repos` (Vault → ServiceAccessSDK → the upstream) and
`verify_audit --all` passes for the platform and every tenant.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hmac
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest

from tests.support.databases import Databases
from tests.support.live import ROOT, LiveServer, free_port, start_asgi_server, stop_process, wait_for_port
from tests.support.mcp import Committed, call, get_tokens, mcp_list, text
from tests.support.openbao import RaftOpenBao
from tests.support.services import unique_secret

REPOS = [{"full_name": "acme-corp/restored", "stargazers_count": 7}]


class FakeGitHub(ThreadingHTTPServer):
    """GitHub's `GET /user/repos` as far as `list_my_repos` needs it: 200 only for the expected bearer token."""

    token = ""

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            expected = f"Bearer {self.server.token}".encode()  # type: ignore[attr-defined]
            ok = self.path.startswith("/user/repos") and hmac.compare_digest(
                self.headers.get("Authorization", "").encode(), expected
            )
            body = json.dumps(REPOS if ok else {"message": "Bad credentials"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(("127.0.0.1", 0), FakeGitHub.Handler)
    server.token = unique_secret("ghp")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def redis_server(log: Path) -> Iterator[str]:
    """An empty Redis of the stack's own (nothing kept on disk), as a fresh deployment starts with."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(proc, port, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def stack_env(database_url: str, bao: RaftOpenBao, token: str, redis_url: str, public_url: str) -> dict[str, str]:
    return bao.env(token) | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "AUTHSEC_PUBLIC_URL": public_url,
        "DEBUG": "0",
        "AUTHSEC_TEST_FAST_PASSWORD_HASHER": "1",
        "OUTBOUND_ALLOW_LOOPBACK": "1",  # the fake GitHub listens on 127.0.0.1
    }


def run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"{' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def backup(command: str, directory: Path, env: dict[str, str]) -> str:
    """What the operator runs (docs/operations.md)."""
    return run([sys.executable, "scripts/backup.py", command, str(directory)], env)


def verify_audit_all(env: dict[str, str]) -> list[str]:
    lines = run([sys.executable, "manage.py", "verify_audit", "--all"], env).splitlines()
    assert lines and all(line.startswith("OK: schema ") for line in lines), lines
    return lines


def audit_heads(database_url: str) -> dict[str, tuple[int, int, str]]:
    """Each schema's audit log as (events, newest seq, newest hash), read straight from the database."""
    heads = {}
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        schemas = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'audit_auditevent' ORDER BY 1"
        ).fetchall()
        for (schema,) in schemas:
            count, seq = conn.execute(f'SELECT count(*), max(seq) FROM "{schema}".audit_auditevent').fetchone()
            newest = conn.execute(f'SELECT hash FROM "{schema}".audit_auditevent WHERE seq = %s', [seq]).fetchone()
            heads[schema] = (count, seq, newest[0] if newest else "")
    return heads


def kid_of(jwt: str) -> str:
    header = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def refresh(server: LiveServer, client_id: str, refresh_token: str) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/t/acme/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
        timeout=30,
    )


def test_a_backup_restored_onto_a_fresh_stack_serves_the_same_users_tokens_secrets_and_audit_log(
    tmp_path: Path, github: FakeGitHub
) -> None:
    databases = Databases()
    source_bao = RaftOpenBao(tmp_path / "bao-source", "source")
    target_bao = RaftOpenBao(tmp_path / "bao-target", "target")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"  # the deployment's address: the restored stack takes it over
    directory = tmp_path / "backup"
    pool = ThreadPoolExecutor(1)
    # Audit retention's archive files (AUDIT_ARCHIVE_DIR) travel with the backup. No event here is old enough to be
    # archived, so one file stands for them: the script copies the directory, whatever it holds.
    archive = tmp_path / "audit-archive"
    archived_file, archived_bytes = Path("tenant_acme") / "tenant_acme-1-9.jsonl.gz", gzip.compress(b'{"seq": 1}\n')
    (archive / archived_file).parent.mkdir(parents=True)
    (archive / archived_file).write_bytes(archived_bytes)
    archives = {"AUDIT_ARCHIVE_DIR": str(archive)}
    try:
        # --- the source stack, and its state --------------------------------------------------------------------
        source_bao.start()
        target_bao.start()  # a new cluster for the restore, initialised (its own keys) while the source is built
        target_ready = pool.submit(target_bao.initialise)
        source_bao.initialise()
        source_bao.bao("secrets", "enable", "-path=secret", "-version=2", "kv")
        source_db = databases.create("backup_source")
        with redis_server(tmp_path / "redis-source.log") as source_redis:
            source_env = stack_env(source_db, source_bao, source_bao.root_token, source_redis, public_url) | archives
            built = json.loads(
                run([sys.executable, "-m", "tests.operations.source_state", github.url, github.token], source_env)
            )
            committed = Committed({"acme": built["client_id"]})
            server = start_asgi_server(source_env, tmp_path / "uvicorn-source.log", port)
            try:
                issued = get_tokens(server, committed, "alice@acme.test", scope="openid email read offline_access")
                endpoint = f"{public_url}/t/acme/mcp/demo"
                before = call(endpoint, issued["access_token"], "list_my_repos")
                assert "acme-corp/restored" in text(before), before
            finally:
                stop_process(server.proc)  # the source app stops first: nothing writes during the backup
            source_heads = audit_heads(source_db)
            assert set(source_heads) == {"public", "tenant_acme"} and all(n for n, _, _ in source_heads.values())

            # --- back up, then the source stack is gone ----------------------------------------------------------
            backup("save", directory, source_env)
            manifest = json.loads((directory / "manifest.json").read_text())
            assert {"public", "tenant_acme"} <= set(manifest["postgres"]["schemas"])
            assert set(manifest["files"]) == {"postgres.dump", "openbao.snap", "audit-archive.tar.gz"}
        shutil.rmtree(archive)  # the source host is gone, its disk too
        source_bao.stop()
        databases.drop(databases.made[0])

        # --- restore into a new database and a new OpenBao -----------------------------------------------------
        target_db = databases.create("backup_target")
        target_ready.result()  # its own keys and root token; the restore replaces them with the source's
        with redis_server(tmp_path / "redis-target.log") as target_redis:
            operator_env = stack_env(target_db, target_bao, target_bao.root_token, target_redis, public_url) | archives
            backup("restore", directory, operator_env)
            assert (archive / archived_file).read_bytes() == archived_bytes  # at the same path, as the runbook says
            target_bao.wait_sealed()  # a forced restore seals the node: it opens with the source's unseal key
            target_bao.unseal(source_bao.unseal_key)
            target_env = stack_env(target_db, target_bao, source_bao.root_token, target_redis, public_url) | archives
            run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "-v", "0"], target_env)
            assert audit_heads(target_db) == source_heads  # every event came back, chain heads unchanged

            server = start_asgi_server(target_env, tmp_path / "uvicorn-target.log", port)
            try:
                # A user signs in with their password (login page, consent, code exchange), and the token is signed
                # with the source's key: its private half came back from the snapshot (no key_lost, no new key).
                fresh = get_tokens(server, committed, "bob@acme.test", scope="openid email read")
                assert kid_of(fresh["access_token"]) == kid_of(issued["access_token"])
                assert "list_my_repos" in mcp_list(endpoint, fresh["access_token"])
                # The access token issued by the source still validates here, offline, against the same key.
                assert "list_my_repos" in mcp_list(endpoint, issued["access_token"])
                # The refresh token issued by the source works once more.
                refreshed = refresh(server, committed.client_ids["acme"], issued["refresh_token"])
                assert refreshed.status_code == 200, refreshed.text
                # The service secret reads back through the app's credential path (the fake GitHub checks it).
                after = call(endpoint, refreshed.json()["access_token"], "list_my_repos")
                assert not getattr(after, "isError", False) and "acme-corp/restored" in text(after), after
            finally:
                stop_process(server.proc)
            # The restored chains verify, with the events the restored stack added (logins, tokens, tool calls).
            # verify_audit records its own `audit.chain_verified` event after the scan: read the heads it checks first.
            heads = audit_heads(target_db)
            verified = verify_audit_all(target_env)
            assert [line.split(":")[1].strip() for line in verified] == ["schema public", "schema tenant_acme"]
            assert heads["tenant_acme"][1] > source_heads["tenant_acme"][1]
            assert f"head {heads['tenant_acme'][1]} hash {heads['tenant_acme'][2]}" in verified[1]
            with psycopg.connect(target_db.replace("postgres://", "postgresql://")) as conn:
                keys = conn.execute(
                    "SELECT action FROM tenant_acme.audit_auditevent WHERE action LIKE 'oauth.key_%' ORDER BY seq"
                ).fetchall()
            assert keys == [("oauth.key_created",)]  # the tenant's first key, made on the source: none lost or new
    finally:
        pool.shutdown()
        source_bao.stop()
        target_bao.stop()
        databases.drop_all()
