"""Version tokens read together (`coherence.read_together`), against the real Redis of the test run: one MGET up
front, each reader answered from it, a token missing from Redis still made on first use, and nothing kept after the
block."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context

from authsec_site.lib import coherence


@pytest.fixture
def keys() -> Iterator[list[str]]:
    made = [f"coherence-test:{uuid.uuid4().hex}" for _ in range(3)]
    yield made
    for key in made:
        cache.delete(key)


def test_the_tokens_are_read_once_up_front_and_answered_from_that_read(keys: list[str]) -> None:
    first, second, missing = keys
    cache.set(first, "v1", timeout=None)
    cache.set(second, "w1", timeout=None)
    with coherence.read_together(first, second, missing):
        cache.set(first, "v2", timeout=None)  # moved by another node after the read: this request keeps what it read
        assert coherence.version_token(first) == "v1"
        assert coherence.version_token(second) == "w1"
        made = coherence.version_token(missing)  # not in Redis at the read: made on first use, as outside
        assert made and cache.get(missing) == made
    assert coherence.version_token(first) == "v2"  # the block's read is gone with the block


def test_the_read_belongs_to_the_schema_it_was_made_in(keys: list[str]) -> None:
    key = keys[0]
    with schema_context("tenant_acme"):
        cache.set(key, "acme", timeout=None)
    with schema_context("tenant_globex"):
        cache.set(key, "globex", timeout=None)
    try:
        with schema_context("tenant_acme"), coherence.read_together(key):
            assert coherence.version_token(key) == "acme"
            with schema_context("tenant_globex"):
                assert coherence.version_token(key) == "globex"  # another schema's key: read from Redis
    finally:
        with schema_context("tenant_globex"):
            cache.delete(key)
        with schema_context("tenant_acme"):
            cache.delete(key)
