"""Faults of the backing services, one at a time, under a web node of our own (tests/reliability/conftest.py):
every failure a client sees is a protocol error (JSON-RPC, or OAuth JSON / a page with HTTP 503), what does not
need the failed service keeps working, and the node is whole again within seconds of the service's return, with
its audit log complete and verified. Each fault lasts a second or two."""

from __future__ import annotations

import httpx2
import pytest

from tests.reliability.conftest import Faults, audit_events, chain_ok, rpc_outcome
from tests.support.faults import wait_until

pytestmark = pytest.mark.django_db
RECOVERY = 5.0  # seconds from the service's return to a whole node (docs/audit.md, docs/scaling.md)
HELLO = {"name": "hello", "arguments": {}}


def _mcp_outcomes(faults: Faults, access: str, fresh: str) -> dict[str, str]:
    return {
        "call": rpc_outcome(faults.mcp("tools/call", HELLO, access)),
        "call with a token new to the node": rpc_outcome(faults.mcp("tools/call", HELLO, fresh)),
        "list": rpc_outcome(faults.mcp("tools/list", {}, access)),
        "anonymous list": rpc_outcome(faults.mcp("tools/list", {}, None)),
        "anonymous list, other tenant": rpc_outcome(faults.mcp("tools/list", {}, None, tenant="globex")),
    }


def _healthz(faults: Faults) -> httpx2.Response:
    return httpx2.get(f"{faults.node.url}/healthz", timeout=30)


def _whole(faults: Faults, refresh: str) -> bool:
    """Everything answers again: MCP, a login tool, the token endpoint and the health check."""
    return (
        rpc_outcome(faults.mcp("tools/call", {"name": "oauth_start", "arguments": {}}, None)) == "ok"
        and faults.refresh(refresh).status_code == 200
        and _healthz(faults).status_code == 200
    )


def test_with_redis_down_every_path_keeps_serving(faults: Faults) -> None:
    """Redis is a cache and a message bus here: while it is down the node serves from its own copies and the
    database (revocations by signal wait for its return: docs/scaling.md); the health check names it."""
    tokens, fresh = faults.tokens(), faults.tokens()
    faults.redis.stop()
    try:
        outcomes = _mcp_outcomes(faults, tokens["access_token"], fresh["access_token"])
        login_tool = rpc_outcome(faults.mcp("tools/call", {"name": "oauth_start", "arguments": {}}, None))
        refreshed = faults.refresh(tokens["refresh_token"])
        health = _healthz(faults)
    finally:
        faults.redis.start()
    assert set(outcomes.values()) == {"ok"}, outcomes
    assert login_tool == "ok"
    assert refreshed.status_code == 200 and "access_token" in refreshed.json()
    assert health.status_code == 503 and health.json()["checks"]["redis"].startswith("error")
    assert wait_until(lambda: _whole(faults, fresh["refresh_token"]), RECOVERY, "recovery after Redis") < RECOVERY


def test_with_vault_down_jwt_validation_and_token_issuance_keep_working(faults: Faults) -> None:
    """Access tokens are verified with public keys the node holds; the signing key's private half was read
    from Vault once per process. Only Vault's own operations fail (service secrets, key rotation)."""
    tokens, fresh = faults.tokens(), faults.tokens()
    faults.vault.close()
    try:
        outcomes = _mcp_outcomes(faults, tokens["access_token"], fresh["access_token"])
        refreshed = faults.refresh(tokens["refresh_token"])
        health = _healthz(faults)
    finally:
        faults.vault.open()
    assert set(outcomes.values()) == {"ok"}, outcomes
    assert refreshed.status_code == 200 and "access_token" in refreshed.json()
    assert health.status_code == 503 and "unreachable" in health.json()["checks"]["vault"]
    assert wait_until(lambda: _whole(faults, fresh["refresh_token"]), RECOVERY, "recovery after Vault") < RECOVERY


def test_while_postgres_restarts_clients_get_503s_and_no_answered_call_loses_its_audit_event(faults: Faults) -> None:
    """Every connection reset, new ones refused (a restart, as a client sees it): calls of known callers are
    still served from the node's copies and their events wait in the spool; what needs the database answers
    503 in its own protocol; once it is back everything works and the log is complete and verified."""
    tokens, fresh = faults.tokens(), faults.tokens()
    agent = f"{faults.agent}-postgres"
    faults.postgres.close()
    try:
        outcomes = _mcp_outcomes(faults, tokens["access_token"], fresh["access_token"])
        calls = sum(
            rpc_outcome(faults.mcp("tools/call", HELLO, tokens["access_token"], agent=agent)) == "ok" for _ in range(10)
        )
        login_tool = faults.mcp("tools/call", {"name": "oauth_start", "arguments": {}}, None)
        unknown_endpoint = faults.mcp("tools/list", {}, None, app="never-looked-up")  # needs the database
        refreshed = faults.refresh(tokens["refresh_token"])
        page = httpx2.get(f"{faults.node.url}/t/acme/accounts/login/", headers={"Accept": "text/html"}, timeout=30)
    finally:
        faults.postgres.open()
    assert set(outcomes.values()) == {"ok"}, outcomes
    assert calls == 10
    assert rpc_outcome(login_tool) == "tool error"  # a tool result saying so, in the protocol
    assert "unavailable" in login_tool.text or "try again" in login_tool.text, login_tool.text
    assert unknown_endpoint.status_code == 503 and unknown_endpoint.headers["Retry-After"] == "5"
    assert rpc_outcome(unknown_endpoint).startswith("HTTP 503 JSON-RPC -32603 Service unavailable: The database")
    assert refreshed.status_code == 503 and refreshed.headers["Retry-After"] == "5"
    assert refreshed.json()["error"] == "temporarily_unavailable"
    assert page.status_code == 503 and "Temporarily unavailable" in page.text and "Traceback" not in page.text
    assert wait_until(lambda: _whole(faults, fresh["refresh_token"]), RECOVERY, "recovery after Postgres") < RECOVERY
    # Every call answered during the restart reaches the log, once.
    wait_until(lambda: len(audit_events(agent)) >= calls, 10, "the outage's audit events")
    assert len({event.request_id for event in audit_events(agent)}) == len(audit_events(agent)) == calls
    assert chain_ok()


def test_a_sigkilled_node_loses_no_audit_event_of_an_answered_call(faults: Faults) -> None:
    """The web process and its audit process SIGKILLed together right after the answers: each answered call's
    event was journalled before its answer left, and the restarted node writes what was left, once."""
    token = faults.tokens()["access_token"]
    agent = f"{faults.agent}-kill"
    answered = sum(rpc_outcome(faults.mcp("tools/call", HELLO, token, agent=agent)) == "ok" for _ in range(40))
    faults.node.kill()
    at_kill = len(audit_events(agent))
    faults.node.start()
    wait_until(lambda: len(audit_events(agent)) >= answered, 20, "the killed node's audit events")
    events = audit_events(agent)
    assert answered == 40 and at_kill < answered  # the kill did come before the log had them all
    # Each answered call once: a batch whose COMMIT reached Postgres just before the kill, its segment not yet
    # deleted, is recognised by the adopter and not written again.
    assert len(events) == len({event.request_id for event in events}) == answered
    assert chain_ok()
