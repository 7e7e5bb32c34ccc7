"""Drop the four indexes no query uses: `action` and `request_id`, each a btree plus a LIKE-pattern twin.

The review pages filter on `category`, actor, application, tool, outcome and time (all indexed) and search
actions and request ids inside the free-text search, which scans a time window. Every audit event paid for
updating these four on insert (an event per MCP tool call).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_chain_constraints"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(help_text='Dotted name, e.g. "tenant.created".', max_length=100),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="request_id",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
