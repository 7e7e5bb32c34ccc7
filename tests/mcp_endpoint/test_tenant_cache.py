"""The endpoint's tenant cache on the event loop: an expired entry is re-read off the loop while requests go on
with it, briefly; a deactivation then answers 404, and an entry too old is not used at all."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from mcp_endpoint import bearer
from tenants.models import Tenant
from tests.support.mcp import Committed, commit_in

pytestmark = pytest.mark.django_db


def _set_active(active: bool) -> None:
    commit_in("public", lambda: Tenant.objects.filter(slug="globex").update(is_active=active))


@pytest.fixture
def short_ttl(monkeypatch: pytest.MonkeyPatch, committed: Committed) -> Any:
    monkeypatch.setattr(bearer, "TENANT_TTL", 0.2)
    monkeypatch.setattr(bearer, "TENANT_STALE_FOR", 0.6)
    bearer._tenants.invalidate("globex")
    yield
    _set_active(True)
    bearer._tenants.invalidate("globex")


def test_an_expired_tenant_is_reread_in_the_background_and_its_deactivation_then_answers_404(
    short_ttl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long grace, and the re-read held at its start until the test lets it go: what is asserted in between
    # holds however slowly a loaded machine runs (the re-read itself is the real one).
    monkeypatch.setattr(bearer, "TENANT_STALE_FOR", 60.0)
    reread_may_go = threading.Event()
    real_tenant = bearer._tenant

    def held_tenant(slug: str, *, reload: bool = False) -> Any:
        if reload:
            assert reread_may_go.wait(30), "the test never let the re-read go"
        return real_tenant(slug, reload=reload)

    monkeypatch.setattr(bearer, "_tenant", held_tenant)

    async def main() -> None:
        await sync_to_async(bearer.resolve)("globex", "demo", None)  # what the first request fills
        assert (await bearer.resolve_cached("globex", "demo", None)).tenant.slug == "globex"
        await sync_to_async(_set_active)(False)
        await asyncio.sleep(0.3)  # the entry expires
        stale = await bearer.resolve_cached("globex", "demo", None)
        assert stale is not None and stale.tenant.slug == "globex"  # answered on the loop, no thread hop
        refresh = bearer._refreshing["globex"]
        assert await bearer.resolve_cached("globex", "demo", None) is not None  # one re-read, not one per request
        assert bearer._refreshing["globex"] is refresh
        reread_may_go.set()
        await refresh
        assert "globex" not in bearer._refreshing
        # Now known as not found: the loop passes the request to the sync path, which answers 404.
        assert await bearer.resolve_cached("globex", "demo", None) is None
        with pytest.raises(bearer.NotFound):
            await sync_to_async(bearer.resolve)("globex", "demo", None)
        await sync_to_async(connections.close_all)()

    asyncio.run(main())


def test_an_entry_past_its_grace_is_not_used_on_the_loop(short_ttl: Any) -> None:
    async def main() -> None:
        await sync_to_async(bearer.resolve)("globex", "demo", None)
        await asyncio.sleep(0.9)  # past TENANT_TTL + TENANT_STALE_FOR
        assert await bearer.resolve_cached("globex", "demo", None) is None  # the caller takes the sync path
        assert "globex" not in bearer._refreshing
        await sync_to_async(connections.close_all)()

    asyncio.run(main())
