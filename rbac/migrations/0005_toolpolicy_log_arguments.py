from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rbac", "0004_application_sdk_client_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="toolpolicy",
            name="log_arguments",
            field=models.BooleanField(
                default=False,
                help_text="Record each call's arguments in the audit log (values under secret-looking keys are redacted).",
            ),
        ),
    ]
