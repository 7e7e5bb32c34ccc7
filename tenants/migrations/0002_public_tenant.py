"""The public schema's Tenant row, which django-tenants needs to route platform (non-/t/) URLs."""

from django.db import migrations


def create_public_tenant(apps, schema_editor):  # type: ignore[no-untyped-def]
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.get_or_create(
        schema_name="public", defaults={"slug": "public", "name": "AuthSec platform", "is_active": True}
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(create_public_tenant, migrations.RunPython.noop)]
