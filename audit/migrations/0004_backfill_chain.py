"""Chain the events written before the hash chain existed, oldest first (by time, then id).

Such rows are sealed as they are at migration time: the chain proves nothing about changes made to them
earlier. The append-only trigger refuses every UPDATE, so it is disabled (as table owner) for the backfill
only, inside this migration's transaction.
"""

import json

from django.db import migrations

from audit.chain import GENESIS_HASH, compute_hash

COLUMNS = (
    "id, created_at, actor_type, actor_id, actor_label, action, outcome, target_type, target_id, target_label, "
    "data, request_id, ip, user_agent"
)


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent WHERE seq IS NULL")
        if cursor.fetchone()[0] == 0:
            return
        cursor.execute(f"SELECT {COLUMNS} FROM audit_auditevent ORDER BY created_at, id")
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        updates = []
        prev_hash = GENESIS_HASH
        for seq, row in enumerate(rows, start=1):
            if isinstance(row["data"], str):
                row["data"] = json.loads(row["data"])
            row["ip"] = str(row["ip"]) if row["ip"] is not None else None
            row.update(seq=seq, prev_hash=prev_hash)
            prev_hash = compute_hash(row)
            updates.append((seq, row["prev_hash"], prev_hash, row["id"]))
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.executemany("UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s", updates)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_review_retention")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
