"""The SLO report and history charts on SQLite, with 30 days of rollups generated in bulk.

    .venv/bin/python bench/slo.py            # 1,000 devices x 30 days of 1-minute data
    .venv/bin/python bench/slo.py --small    # 100 devices (make bench)

Generates, with direct SQL into a temporary SQLite file: one 1-minute rollup per device
and minute for ``--days`` days (about one check in 500 failing), the 1-hour rollups
folded from them, the 1-day rollups built by ``storage.backfill_day_rollups`` (the
product's one-off step for a database from before the day tier, timed), and raw samples
(one per device and minute) for the last day. Then
measures the median of several runs of what the endpoints run (the API's functions and
the JSON encoding; not Django's request handling, a millisecond or two):

- ``GET /api/v1/slo?window=30d`` (``slo_table``): every device, with its six burn rates
  (target ≤ 200 ms at 1,000 devices);
- the same report without burn rates (``device_report(with_burn=False)``);
- ``GET /api/v1/devices/{id}/history`` over 30 days (``device_history``, step 3600: the
  1-hour tier, 720 points; target ≤ 50 ms);
- the SLO report again after the raw history has grown 10x (target: flat).

Prints JSON lines ``{"bench": "slo", ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = 86400


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "slo", **fields}), flush=True)


def generate(devices: int, days: int, now_s: int) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from resourcemonitor.inventory.models import Device, Kind, Site

    sites = [Site.objects.create(name=f"site-{i:02d}") for i in range(10)]
    kinds = list(Kind.values)
    Device.objects.bulk_create(
        Device(
            name=f"dev-{i:05d}",
            address=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            kind=kinds[i % len(kinds)],
            site=sites[i % len(sites)],
            check_interval_s=60.0,
            check_port=80,
        )
        for i in range(devices)
    )
    Device.objects.update(created_at=timezone.now() - timedelta(days=days + 1))
    start = now_s - now_s % 3600 - days * DAY
    histogram = ", ".join(["0"] * 3 + ["1"] + ["0"] * 12)  # every check 5-10 ms
    began = time.perf_counter()
    with connection.cursor() as cursor:
        # A throw-away file: no journal while loading (WAL would hold the whole load twice).
        cursor.execute("PRAGMA journal_mode = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
    with transaction.atomic(), connection.cursor() as cursor:
        # Bulk load in key order without the secondary index, then build it once: several
        # times faster than inserting into two B-trees in two different orders.
        cursor.execute("DROP INDEX rollup_res_bucket")
        cursor.execute(
            "INSERT INTO monitoring_rollup (device_id, resolution, bucket, count, ok_count, "
            "latency_count, latency_sum_ms, latency_min_ms, latency_max_ms, "
            + ", ".join(f"h{i}" for i in range(16))
            + ") WITH RECURSIVE m(b) AS "
            "(SELECT %s UNION ALL SELECT b + 60 FROM m WHERE b + 60 < %s) "
            f"SELECT d.id, 60, m.b, 1, abs(random()) %% 500 != 0, 1, 7.0, 7.0, 7.0, {histogram} "
            "FROM inventory_device d CROSS JOIN m ORDER BY d.id, m.b",
            [start, now_s],
        )
        minutes = cursor.rowcount
        cursor.execute(
            "INSERT INTO monitoring_rollup (device_id, resolution, bucket, count, ok_count, "
            "latency_count, latency_sum_ms, latency_min_ms, latency_max_ms, "
            + ", ".join(f"h{i}" for i in range(16))
            + ") SELECT device_id, 3600, bucket - bucket %% 3600, SUM(count), SUM(ok_count), "
            "SUM(latency_count), SUM(latency_sum_ms), MIN(latency_min_ms), MAX(latency_max_ms), "
            + ", ".join(f"SUM(h{i})" for i in range(16))
            + " FROM monitoring_rollup WHERE resolution = 60 "
            "GROUP BY device_id, bucket - bucket %% 3600",
            [],
        )
        hours = cursor.rowcount
        cursor.execute("CREATE INDEX rollup_res_bucket ON monitoring_rollup (resolution, bucket)")
    # The 1-day tier through the product's own one-off step, as an upgraded database gets it.
    day_rows = backfill_days()
    with connection.cursor() as cursor:
        # Back to what the product runs with (settings.py) for the measurements.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    emit(
        step="generate",
        devices=devices,
        days=days,
        minute_rollups=minutes,
        hour_rollups=hours,
        day_rollups=day_rows,
        seconds=round(time.perf_counter() - began, 1),
    )


def backfill_days() -> int:
    """``storage.backfill_day_rollups``, timed: the one-off step of an upgraded database."""
    from resourcemonitor.monitoring import storage

    began = time.perf_counter()
    days = storage.backfill_day_rollups()
    emit(step="backfill_days", day_rollups=days, seconds=round(time.perf_counter() - began, 2))
    return days


def add_raw(days: float, now_s: int, offset_days: float) -> int:
    """One raw sample per device and minute over ``days``, ending ``offset_days`` ago."""
    from django.db import connection, transaction

    end_ms = (now_s - int(offset_days * DAY)) * 1000
    start_ms = end_ms - int(days * DAY) * 1000
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT OR IGNORE INTO monitoring_sample (t, device_id, ok, latency_us, error) "
            "WITH RECURSIVE m(t) AS (SELECT %s UNION ALL SELECT t + 60000 FROM m "
            "WHERE t + 60000 < %s) SELECT m.t + d.id, d.id, 1, 7000, NULL "
            "FROM m CROSS JOIN inventory_device d ORDER BY m.t, d.id",
            [start_ms, end_ms],
        )
        return int(cursor.rowcount)


def raw_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM monitoring_sample")
        return int(cursor.fetchone()[0])


def timed(call: Callable[[], dict[str, Any]], runs: int) -> tuple[float, dict[str, Any]]:
    """Median milliseconds of ``call`` plus its JSON encoding, and its last answer."""
    took = []
    body: dict[str, Any] = {}
    for _ in range(runs):
        began = time.perf_counter()
        body = call()
        json.dumps(body, separators=(",", ":"))
        took.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(took), 1), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100 devices (make bench)")
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="generate into DIR and keep it; a later run with the same DIR reuses the data",
    )
    args = parser.parse_args()
    devices = args.devices or (100 if args.small else 1000)
    if devices < 1 or not 1 <= args.days <= 35:
        parser.error("--devices must be at least 1 and --days 1 to 35")

    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = str(Path(args.keep).resolve())
            Path(tmp).mkdir(parents=True, exist_ok=True)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="resmon-bench-slo-"))
        reuse = (Path(tmp) / "generated").exists()
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        os.environ["RESMON_DATA_DIR"] = tmp
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
        import django

        django.setup()
        from django.core.management import call_command
        from django.utils import timezone

        from resourcemonitor.api.slo import slo_table
        from resourcemonitor.monitoring.slo import device_history, device_report

        call_command("migrate", verbosity=0)
        if reuse:
            now_s = int((Path(tmp) / "generated").read_text())
            raw = raw_count()
            backfill_days()  # data kept from before the day tier: a no-op otherwise
        else:
            now_s = int(time.time())
            generate(devices, args.days, now_s)
            raw = add_raw(1, now_s, 0)
            (Path(tmp) / "generated").write_text(str(now_s))

        def report() -> dict[str, Any]:
            return slo_table("30d", None, None, timezone.now())

        report_ms, body = timed(report, args.runs)
        assert body["count"] == devices
        emit(
            what="report_30d",
            devices=devices,
            raw_samples=raw,
            ms=report_ms,
            target_ms=200 if devices <= 1000 else None,
        )
        bare_ms, _ = timed(
            lambda: {"items": device_report("30d", timezone.now(), with_burn=False).items},
            args.runs,
        )
        emit(what="report_30d_without_burn_rates", devices=devices, ms=bare_ms)
        device_id = body["items"][0]["id"]
        history_ms, history = timed(
            lambda: device_history(device_id, now_s - 30 * DAY, now_s, 3600), args.runs
        )
        emit(
            what="history_30d",
            points=len(history["items"]),
            source=history["source"],
            ms=history_ms,
            target_ms=50,
        )
        if raw_count() < 10 * raw:
            raw += add_raw(6, now_s, 1) + add_raw(3, now_s, 7)  # 10 days of raw in all
        raw = raw_count()
        grown_ms, _ = timed(report, args.runs)
        emit(
            what="report_30d_raw_10x",
            devices=devices,
            raw_samples=raw,
            ms=grown_ms,
            ratio=round(grown_ms / report_ms, 2),
        )


if __name__ == "__main__":
    main()
