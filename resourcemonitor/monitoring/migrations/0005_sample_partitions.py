"""On PostgreSQL, ``monitoring_sample`` becomes a table range-partitioned by day on ``t``.

Retention then drops whole partitions (instant, no vacuum debt) instead of deleting rows,
and the writer creates each day's partition ahead of need (``storage.ensure_partitions``).
The primary key ``(t, device_id)`` stays (it includes the partition key, as PostgreSQL
requires) and keeps the idempotent ``ON CONFLICT DO NOTHING`` ingest. Rows already stored
are copied into their day's partition. A DEFAULT partition catches a row of a day
without a partition yet (a direct INSERT that bypassed the writer); creating that day's
partition later moves such rows into it. SQLite keeps its WITHOUT ROWID table: nothing to do.
"""

from django.db import migrations

DAY_MS = 86_400_000


def partition(schema_editor, day_start_ms):
    from datetime import UTC, datetime

    name = "monitoring_sample_p" + datetime.fromtimestamp(day_start_ms / 1000, UTC).strftime(
        "%Y%m%d"
    )
    schema_editor.execute(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF monitoring_sample "
        f"FOR VALUES FROM ({day_start_ms}) TO ({day_start_ms + DAY_MS})"
    )


def to_partitioned(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    import time

    schema_editor.execute("ALTER TABLE monitoring_sample RENAME TO monitoring_sample_old")
    schema_editor.execute("ALTER INDEX monitoring_sample_pkey RENAME TO monitoring_sample_old_pkey")
    schema_editor.execute(
        "CREATE TABLE monitoring_sample ("
        " t bigint NOT NULL, device_id bigint NOT NULL, ok boolean NOT NULL,"
        " latency_us integer, error varchar(100), PRIMARY KEY (t, device_id)"
        ") PARTITION BY RANGE (t)"
    )
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT MIN(t), MAX(t) FROM monitoring_sample_old")
        low, high = cursor.fetchone()
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    first = min(low // DAY_MS * DAY_MS, today) if low is not None else today
    last = max(high // DAY_MS * DAY_MS, today + DAY_MS) if high is not None else today + DAY_MS
    for day in range(first, last + DAY_MS, DAY_MS):
        partition(schema_editor, day)
    schema_editor.execute(
        "CREATE TABLE monitoring_sample_default PARTITION OF monitoring_sample DEFAULT"
    )
    schema_editor.execute("INSERT INTO monitoring_sample SELECT * FROM monitoring_sample_old")
    schema_editor.execute("DROP TABLE monitoring_sample_old")


def to_plain(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE monitoring_sample RENAME TO monitoring_sample_parted")
    schema_editor.execute(
        "CREATE TABLE monitoring_sample ("
        " t bigint NOT NULL, device_id bigint NOT NULL, ok boolean NOT NULL,"
        " latency_us integer, error varchar(100), PRIMARY KEY (t, device_id))"
    )
    schema_editor.execute("INSERT INTO monitoring_sample SELECT * FROM monitoring_sample_parted")
    schema_editor.execute("DROP TABLE monitoring_sample_parted CASCADE")


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_rollup_covering_index"),
    ]

    operations = [migrations.RunPython(to_partitioned, to_plain)]
