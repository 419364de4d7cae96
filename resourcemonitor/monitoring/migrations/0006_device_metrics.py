"""``monitoring_devicemetric``: per-device named numbers (CPU, octet rates, uptime, ...),
and ``monitoring_devicemetriclatest``: the newest value of each exported name per device.

Like ``monitoring_sample``: a time-first primary key, so ingest appends and retention
deletes from the front; WITHOUT ROWID on SQLite keeps a row near 36 bytes (24 more in
the index). The
``(device_id, t)`` index serves ``GET /api/v1/devices/{id}/metrics``. Raw SQL because
Django cannot say WITHOUT ROWID; the model is unmanaged.
"""

import django.db.models.deletion
from django.db import migrations, models

SQLITE_TABLE = """
CREATE TABLE monitoring_devicemetric (
    t INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (t, device_id, name)
) WITHOUT ROWID
"""

POSTGRES_TABLE = """
CREATE TABLE monitoring_devicemetric (
    t bigint NOT NULL,
    device_id bigint NOT NULL,
    name varchar(100) NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (t, device_id, name)
)
"""

INDEX = "devicemetric_device_t"


def create_table(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    schema_editor.execute(SQLITE_TABLE if vendor == "sqlite" else POSTGRES_TABLE)
    schema_editor.execute(f"CREATE INDEX {INDEX} ON monitoring_devicemetric (device_id, t)")


def drop_table(apps, schema_editor):
    schema_editor.execute("DROP TABLE monitoring_devicemetric")


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("monitoring", "0005_sample_partitions"),
    ]

    operations = [
        migrations.RunPython(create_table, drop_table),
        migrations.CreateModel(
            name="DeviceMetric",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "t",
                        "device",
                        "name",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("t", models.BigIntegerField()),
                ("name", models.CharField(max_length=100)),
                ("value", models.FloatField()),
                (
                    "device",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        to="inventory.device",
                    ),
                ),
            ],
            options={
                "db_table": "monitoring_devicemetric",
                "managed": False,
            },
        ),
        # The newest value per device of each name /metrics exports: a scrape reads these
        # few rows a device instead of scanning the recent history.
        migrations.CreateModel(
            name="DeviceMetricLatest",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "device",
                        "name",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("t", models.BigIntegerField()),
                ("value", models.FloatField()),
                (
                    "device",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="inventory.device",
                    ),
                ),
            ],
        ),
    ]
