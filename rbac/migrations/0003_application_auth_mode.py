from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rbac", "0002_toolpolicy_name_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="auth_mode",
            field=models.CharField(
                choices=[
                    ("oauth_tools", "Login tools (the seed's flow)"),
                    ("bearer", "Bearer token required (standard MCP authorization)"),
                    ("both", "Both: login tools, or a bearer token when presented"),
                ],
                default="both",
                help_text="How MCP clients authenticate at this application's endpoint.",
                max_length=16,
            ),
        ),
    ]
