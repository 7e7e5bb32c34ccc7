"""The database backend (`authsec_site.lib.pg_backend`) sends ``SET search_path`` only when the connection's path is
not already the one a query needs: the second request of a tenant on a kept connection sends none, and everything
that can undo or lose a ``SET`` (a savepoint or transaction rollback, a closed connection, another schema) makes the
next query send it again. After each step the path PostgreSQL really has is read behind the backend's back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Tenant

pytestmark = pytest.mark.django_db
LOGIN = "/t/{}/accounts/login/"  # a page that reads its tenant's tables (upstream providers)


def real_path() -> str:
    """The search_path of the live connection, asked without going through the backend's cursor."""
    with connection.connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0].replace('"', "").replace(" ", "")


def sets_sent(call: Callable[[], object]) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        call()
    return [query["sql"] for query in queries if query["sql"].startswith("SET search_path")]


def page(tenant: Tenant) -> Callable[[], object]:
    def get() -> object:
        response = Client().get(LOGIN.format(tenant.slug))
        assert response.status_code == 200 and tenant.name in response.content.decode()
        return response

    return get


def believed() -> str:
    """The path the backend believes the connection has."""
    return ",".join(connection.search_path_set_schemas or [])


def test_the_second_request_of_a_tenant_sends_no_set(acme: Tenant) -> None:
    assert sets_sent(page(acme))[-1:] == ['SET search_path = "tenant_acme","public"']
    assert sets_sent(page(acme)) == []
    assert real_path() == believed() == "tenant_acme,public"


def test_another_tenant_sends_its_own_path_each_time(acme: Tenant, globex: Tenant) -> None:
    page(acme)()
    assert sets_sent(page(globex))[-1:] == ['SET search_path = "tenant_globex","public"']
    assert real_path() == believed() == "tenant_globex,public"
    assert sets_sent(page(acme))[-1:] == ['SET search_path = "tenant_acme","public"']
    assert real_path() == believed() == "tenant_acme,public"


def test_a_set_undone_by_a_savepoint_rollback_is_not_trusted(acme: Tenant, globex: Tenant) -> None:
    """The connection has globex's path; a savepoint sets acme's and is rolled back, so PostgreSQL is back on globex's.
    The backend must not skip the next SET for acme because it once sent it."""
    connection.set_tenant(globex)
    User.objects.count()
    assert real_path() == "tenant_globex,public"
    with pytest.raises(DatabaseError), transaction.atomic():
        connection.set_tenant(acme)
        User.objects.count()  # SET acme inside the savepoint
        assert real_path() == "tenant_acme,public"
        raise DatabaseError("roll the savepoint back")
    # Releasing the savepoint after its rollback is itself a query: it had to send SET acme again.
    assert real_path() == believed() == "tenant_acme,public"
    assert User.objects.filter(email="admin@acme.test").exists()
    # Requests go on as before: acme's second one sends none.
    page(acme)()
    assert sets_sent(page(acme)) == []
    assert real_path() == believed() == "tenant_acme,public"


def test_switching_after_a_rolled_back_savepoint_keeps_every_path_right(acme: Tenant, globex: Tenant) -> None:
    """A savepoint rolled back with nothing after it: the path the backend remembered is forgotten with it."""
    page(acme)()
    with pytest.raises(DatabaseError), transaction.atomic(savepoint=True):
        with schema_context(globex.schema_name):
            User.objects.count()
        raise DatabaseError("roll back")
    for _ in range(2):
        page(globex)()
        assert real_path() == believed() == "tenant_globex,public"
        page(acme)()
        assert real_path() == believed() == "tenant_acme,public"
