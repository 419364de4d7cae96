"""Drop the rollup table's index on ``device_id`` alone: the primary key starts with it.

Every rollup write maintained it for nothing (every read by device uses the primary key
or the covering index of 0004). Done in SQL rather than by Django's AlterField, which on
SQLite rebuilds the whole table and, the covering index being unknown to the model state,
would drop that one too.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "monitoring_rollup_device_id_70784a13"


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


def create_index(apps, schema_editor):
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON monitoring_rollup (device_id)")


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0004_device_updated_at_index"),
        ("monitoring", "0007_devicestate_flap_history"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="rollup",
                    name="device",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="inventory.device",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        )
    ]
