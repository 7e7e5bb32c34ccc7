"""Fixtures of the audit tests: an auditor, staff without the auditor permission, logged-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.roles import DashboardRole
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.support.accounts import ADMIN_PASSWORD, log_in
from tests.support.siem import SiemCA


@pytest.fixture
def auditor(acme: Tenant) -> User:
    with schema_context(acme.schema_name):
        return UserFactory(email="auditor@acme.test", is_staff=True, dashboard_roles=[DashboardRole.AUDITOR])


@pytest.fixture
def staff(acme: Tenant) -> User:
    """Staff of the dashboard without the auditor permission (e.g. a helpdesk account)."""
    with schema_context(acme.schema_name):
        return UserFactory(email="helpdesk@acme.test", is_staff=True)


@pytest.fixture
def auditor_client(auditor: User, acme: Tenant) -> Client:
    return log_in(acme, auditor.email)


@pytest.fixture
def staff_client(staff: User, acme: Tenant) -> Client:
    return log_in(acme, staff.email)


@pytest.fixture
def admin_client(acme: Tenant) -> Client:
    return log_in(acme, "admin@acme.test", ADMIN_PASSWORD)


@pytest.fixture
def archive_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    with override_settings(AUDIT_ARCHIVE_DIR=tmp_path / "audit-archive"):
        yield tmp_path / "audit-archive"


# --- The audit stream to SIEMs -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def siem_ca() -> SiemCA:
    """A CA made for this run; the receivers' certificates come from it, and sinks trust it by its PEM."""
    return SiemCA()


@pytest.fixture
def stream_settings() -> Iterator[None]:
    """Receivers listen on loopback; short timeouts and backoff so outages play out in seconds."""
    with override_settings(
        OUTBOUND_ALLOW_LOOPBACK=True, AUDIT_SINK_TIMEOUT=3, AUDIT_SINK_RETRY_MAX=1, AUDIT_SINK_DEAD_LETTER_AFTER=3
    ):
        yield
