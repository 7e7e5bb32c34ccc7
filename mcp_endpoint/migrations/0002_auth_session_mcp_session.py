from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mcp_endpoint", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="authsession",
            name="mcp_session_id",
            field=models.CharField(blank=True, db_index=True, default="", editable=False, max_length=128),
        ),
    ]
