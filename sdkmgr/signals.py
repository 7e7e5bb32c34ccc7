"""Keep the public SDK-client directory in step with each tenant's applications, whatever path changed them
(dashboard, REST API, services, shell, migrations of an existing tenant)."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import connection
from django.db.models.signals import post_delete, post_migrate, post_save


def _tenant_of_connection() -> Any:
    from tenants.models import Tenant

    schema = connection.schema_name
    if not schema or schema == "public":
        return None
    return Tenant.objects.filter(schema_name=schema).first()


def sync_application(application: Any) -> None:
    """Write (or refresh) the directory row of one application of the current tenant schema."""
    from sdkmgr.models import SdkClient

    tenant = _tenant_of_connection()
    if tenant is None or application.sdk_client_id is None:
        return
    SdkClient.objects.update_or_create(
        client_id=application.sdk_client_id,
        defaults={"tenant": tenant, "application_slug": application.slug, "is_active": application.is_active},
    )


def sync_tenant() -> int:
    """Write the directory rows of every application of the current tenant schema; returns how many."""
    from rbac.models import Application

    count = 0
    for application in Application.objects.all():
        sync_application(application)
        count += 1
    return count


def _on_saved(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        sync_application(instance)


def _on_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from sdkmgr.models import SdkClient

    if instance.sdk_client_id is not None:
        SdkClient.objects.filter(client_id=instance.sdk_client_id).delete()


def _on_migrated(sender: Any, **kwargs: Any) -> None:
    # migrate_schemas runs once per tenant schema: fill the directory for applications created before it existed.
    from django.db.utils import DatabaseError

    if connection.schema_name in ("", "public"):
        return
    # A schema still being built (tables of another app missing): the next migrate fills the directory.
    with contextlib.suppress(DatabaseError):
        sync_tenant()


def connect(app_config: Any) -> None:
    from rbac.models import Application

    post_save.connect(_on_saved, sender=Application, dispatch_uid="sdkmgr_directory_save")
    post_delete.connect(_on_deleted, sender=Application, dispatch_uid="sdkmgr_directory_delete")
    post_migrate.connect(_on_migrated, sender=app_config, dispatch_uid="sdkmgr_directory_migrate")
