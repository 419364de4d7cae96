"""PostgreSQL: make each rollup write cheaper, for the ingest rate (docs/scaling.md).

- **No database foreign key from rollups to devices** (``db_constraint=False``, as the
  samples already have). The check ran once per new rollup row at commit: a lookup and a
  row lock on the device, a fifth of the writer's time at 10,000 devices. Deleting a
  device still deletes its rollups (Django's CASCADE does it); rows the writer adds in
  the seconds after that are orphans that no reader sees (every read goes by device)
  and retention removes with their tier.
- **No covering index** (0004's ``rollup_slo_covering``): an hour row is updated with
  every minute that closes, and an index holding ``count`` and ``ok_count`` made every
  such update write one more index entry and ruled out HOT updates (the row rewritten in
  its page, no index touched) wherever a page has room. PostgreSQL reads the SLO sums
  through the primary key and the rows instead. (A fillfactor below 100, to leave such
  room, measured no faster at ingest and costs disk on every minute row: not set.)

SQLite keeps both: it has no HOT updates to win, its writes meet their target, and
dropping a foreign key there means rebuilding the table. The model state says
``db_constraint=False`` for both; a later rebuild of the SQLite table drops its key too.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "rollup_slo_covering"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'monitoring_rollup'::regclass "
            "AND contype = 'f'"
        )
        names = [row[0] for row in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f'ALTER TABLE monitoring_rollup DROP CONSTRAINT "{name}"')
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON monitoring_rollup (device_id, resolution, bucket) "
        "INCLUDE (count, ok_count)"
    )
    schema_editor.execute(
        "ALTER TABLE monitoring_rollup ADD CONSTRAINT monitoring_rollup_device_id_fk "
        "FOREIGN KEY (device_id) REFERENCES inventory_device (id) DEFERRABLE INITIALLY DEFERRED"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0005_device_check_interval_index"),
        ("monitoring", "0008_rollup_no_device_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="rollup",
                    name="device",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="inventory.device",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
