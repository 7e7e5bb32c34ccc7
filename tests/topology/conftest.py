"""The two-node topology (tests/support/topology.py) on the test database, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live import live_server_env
from tests.support.topology import Backing, Topology


@pytest.fixture(scope="module")
def topology(django_db_setup, tmp_path_factory) -> Iterator[Topology]:  # type: ignore[no-untyped-def]
    """Two web nodes behind HAProxy (deploy/haproxy.cfg), a Celery worker and beat, on this test run's Postgres,
    Redis and OpenBao; stopped, every process by its PID, after the module."""
    env = live_server_env()
    extra = {"AUTHSEC_TEST_FAST_PASSWORD_HASHER": "1"}
    with Topology(Backing.from_env(env), workdir=tmp_path_factory.mktemp("topology"), env=extra) as topo:
        yield topo
