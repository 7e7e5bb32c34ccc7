"""Every event now has a chain position; add the indexes of the review pages' filters (keyset order last)."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_backfill_chain")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(editable=False, help_text="Position in this schema's hash chain.", unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["created_at", "id"], include=("outcome",), name="audit_time_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["outcome", "created_at", "id"], name="audit_outcome_time_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["category", "created_at", "id"], name="audit_category_time_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Upper("actor_label"),
                models.F("created_at"),
                models.F("id"),
                name="audit_actor_label_time_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor_id", "created_at", "id"], name="audit_actor_id_time_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("tool__isnull", False)), fields=["tool", "created_at", "id"], name="audit_tool_time_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("application__isnull", False)),
                fields=["application", "created_at", "id"],
                name="audit_application_time_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("outcome", "deny")),
                fields=["created_at"],
                include=("application", "tool"),
                name="audit_denied_time_idx",
            ),
        ),
    ]
