"""Hash-chain columns, generated filter columns, the review permission, checkpoints and audit settings.

Also the function `audit_lock_chain_head` that `audit.chain.link` calls. `seq` starts nullable: 0004 chains the rows that already exist, 0005 makes it required and unique and
adds the indexes of the review pages. Checkpoints get the same database guard as events (no UPDATE or
DELETE at all: retention never removes a checkpoint).
"""

import django.core.validators
import django.db.models.fields.json
import django.utils.timezone
from django.db import migrations, models

import audit.models

CHECKPOINT_GUARD = """
CREATE OR REPLACE FUNCTION audit_checkpoint_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_append_only();
"""

# One round trip for record(): take the schema's chain lock (waiting at most `timeout`), then read the head
# with a fresh snapshot (PL/pgSQL takes one per statement), so the head is never older than the lock.
CHAIN_HEAD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_lock_chain_head(lock_class integer, timeout text)
RETURNS TABLE (head_seq bigint, head_hash varchar, head_created_at timestamptz) AS $$
DECLARE
    previous text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(lock_class, hashtext(current_schema())) THEN
        previous := current_setting('lock_timeout');
        PERFORM set_config('lock_timeout', timeout, true);
        PERFORM pg_advisory_xact_lock(lock_class, hashtext(current_schema()));
        PERFORM set_config('lock_timeout', previous, true);
    END IF;
    RETURN QUERY
        (SELECT e.seq, e.hash, e.created_at FROM audit_auditevent e ORDER BY e.seq DESC LIMIT 1)
        UNION ALL
        (SELECT c.seq, c.hash, c.last_created_at FROM audit_auditcheckpoint c ORDER BY c.seq DESC LIMIT 1)
        ORDER BY 1 DESC LIMIT 1;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP_CHAIN_HEAD_FUNCTION = "DROP FUNCTION IF EXISTS audit_lock_chain_head(integer, text);"

DROP_CHECKPOINT_GUARD = """
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(help_text="Chain position of the last archived event.", unique=True)),
                ("hash", models.CharField(help_text="Hash of the last archived event.", max_length=64)),
                ("last_created_at", models.DateTimeField(help_text="Time of the last archived event.")),
                ("first_seq", models.BigIntegerField(help_text="Chain position of the first event in the archive.")),
                (
                    "first_prev_hash",
                    models.CharField(help_text="The hash the first archived event links to.", max_length=64),
                ),
                ("event_count", models.PositiveIntegerField()),
                ("archive_file", models.CharField(help_text="Path of the gzip JSON Lines archive.", max_length=500)),
                ("archive_sha256", models.CharField(help_text="SHA-256 of the archive file.", max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["-seq"]},
        ),
        migrations.RunSQL(CHECKPOINT_GUARD, DROP_CHECKPOINT_GUARD),
        migrations.RunSQL(CHAIN_HEAD_FUNCTION, DROP_CHAIN_HEAD_FUNCTION),
        migrations.CreateModel(
            name="AuditSettings",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("singleton", models.BooleanField(default=True, editable=False, unique=True)),
                (
                    "retention_days",
                    models.PositiveIntegerField(
                        default=audit.models._default_retention_days,
                        help_text="Events older than this many days are archived (gzip JSON Lines) and then deleted "
                        "from the database. 0 keeps every event in the database.",
                        validators=[django.core.validators.MaxValueValidator(36500)],
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "audit settings", "verbose_name_plural": "audit settings"},
        ),
        migrations.AddConstraint(
            model_name="auditsettings",
            constraint=models.CheckConstraint(condition=models.Q(("singleton", True)), name="audit_settings_singleton"),
        ),
        migrations.AlterModelOptions(
            name="auditevent",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [("review_auditevent", "Can review and export the audit log")],
            },
        ),
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(
                editable=False, help_text="Position in this schema's hash chain.", null=True
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(
                default="", editable=False, help_text="Hash of the previous event in the chain.", max_length=64
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(
                default="", editable=False, help_text="SHA-256 of this event's canonical content.", max_length=64
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="category",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Func(models.F("action"), models.Value("."), models.Value(1), function="split_part"),
                output_field=models.CharField(max_length=100),
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="application",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.fields.json.KeyTextTransform("application", "data"),
                output_field=models.TextField(null=True),
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="tool",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.fields.json.KeyTextTransform("tool", "data"),
                output_field=models.TextField(null=True),
            ),
        ),
        # Single-column indexes superseded by the (column, created_at, id) ones added in 0005.
        migrations.AlterField(
            model_name="auditevent",
            name="actor_id",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="outcome",
            field=models.CharField(
                choices=[("success", "Success"), ("failure", "Failure"), ("allow", "Allowed"), ("deny", "Denied")],
                default="success",
                max_length=16,
            ),
        ),
    ]
