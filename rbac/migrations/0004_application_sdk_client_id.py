"""Every application gets its own SDK client id (existing rows: one fresh UUID each, then unique)."""

import uuid

from django.db import migrations, models


def fill(apps, schema_editor):  # type: ignore[no-untyped-def]
    Application = apps.get_model("rbac", "Application")
    for application in Application.objects.all():
        application.sdk_client_id = uuid.uuid4()
        application.save(update_fields=["sdk_client_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("rbac", "0003_application_auth_mode"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="sdk_client_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="application",
            name="sdk_client_id",
            field=models.UUIDField(
                default=uuid.uuid4,
                editable=False,
                help_text="Give this to run_mcp_server_with_oauth(client_id=...) of the AuthSec SDK (see docs/sdk.md).",
                unique=True,
                verbose_name="SDK client id",
            ),
        ),
    ]
