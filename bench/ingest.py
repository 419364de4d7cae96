"""Sample ingest through ``storage.write_batch``, rollups maintained: samples per second.

    .venv/bin/python bench/ingest.py --backend sqlite
    .venv/bin/python bench/ingest.py --backend postgres     # PostgreSQL at 127.0.0.1:5432
    .venv/bin/python bench/ingest.py --backend postgres --batch 1000
    .venv/bin/python bench/ingest.py --small                # make bench: sqlite, fewer rows

The stream is the collector's: 10,000 devices each checked every 10 s, in phase order, cut
into batches of ``--batch`` samples, every device at most once per batch. By default the
batch is the writer's ``RESMON_BATCH_MAX`` (5,000): the size its batches reach whenever
results arrive faster than it writes them, so the figure is its capacity. (At the
stream's own pace, 1,000 results a second, it writes 1 s batches of 1,000; ``--batch
1000`` measures how fast it would go were it held to those.) The batches are built before the clock
starts, and set aside from the cyclic garbage collector as the collector sets aside its
own long-lived objects (``gc.freeze``); the clock covers ``write_batch`` for every batch,
with its commit, and the final flush of the rollups still open, so every sample is in its
minute, hour and day rollups when it stops. ``samples_per_s`` = samples / that time.

- ``samples_per_s``: the collector's writer path: a ``rollups.RollupBuffer`` keeps the
  open (device, minute) buckets across batches and upserts each once when its minute
  closes. Its clock is the stream's own time (the newest sample written), as if the
  stream were arriving live; the samples are a day old so that no partition or bucket is
  shared with another run.
- ``immediate_per_s``: no buffer (the push-ingest path, and the writer before the
  buffer): every inserted sample upserts its minute, hour and day rows at once.
- ``with_states_per_s``: the writer path plus one DeviceState upsert per sample, as the
  collector writes.

Each figure is measured on its own day of data (ten days apart), so each starts with
empty rollups; after each, the bench checks that every tier counts every sample once.
SQLite runs on a temporary file with the product's pragmas; PostgreSQL on a fresh
database ``resmon_bench_ingest_<pid>`` (dropped at the end). Prints one JSON line:
{"bench": "ingest", "backend", "samples_per_s", ...}.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgres://postgres@127.0.0.1:5432/"
# One database per run: two people benchmarking at once must not drop each other's.
PG_DB = f"resmon_bench_ingest_{os.getpid()}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300_000, help="samples written in all")
    parser.add_argument(
        "--batch", type=int, default=None, help="samples a batch (default: RESMON_BATCH_MAX)"
    )
    parser.add_argument("--small", action="store_true", help="sqlite, 50,000 samples")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the writer path into FILE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def child(args: argparse.Namespace) -> dict[str, object]:
    """Runs with RESMON_DATA_DIR / DATABASE_URL set: migrate, seed devices, write batches."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from resourcemonitor.inventory.models import Device
    from resourcemonitor.monitoring import rollups, storage
    from resourcemonitor.monitoring.storage import Batch, SampleRow, StateRow

    size = args.batch or settings.RESMON_BATCH_MAX
    call_command("migrate", verbosity=0)
    Device.objects.bulk_create(
        [Device(name=f"ingest-{n:05d}", address="127.0.0.1") for n in range(args.devices)],
        batch_size=2000,
    )
    ids = list(Device.objects.order_by("id").values_list("id", flat=True))
    now = timezone.now()
    start_ms = (int(time.time()) - 86_400) * 1000
    step_ms = 10_000 / len(ids)  # every device once per 10 s, in phase order

    def batches(with_states: bool, offset_ms: int) -> list[Batch]:
        out = []
        for first in range(0, args.samples, size):
            batch = Batch()
            for n in range(first, min(first + size, args.samples)):
                device_id = ids[n % len(ids)]
                ok = n % 50 != 0
                t = offset_ms + int(n * step_ms)
                batch.add(
                    SampleRow(
                        t, device_id, ok, 800 + n % 5000 if ok else None, None if ok else "timeout"
                    ),
                    StateRow(device_id, "up", now, now, now, 1.0, 0, 5, "", False, now)
                    if with_states
                    else None,
                )
            out.append(batch)
        return out

    figures: dict[str, object] = {"batch": size}
    for label, with_states, buffered, offset in (
        ("samples_per_s", False, True, start_ms),
        ("immediate_per_s", False, False, start_ms - 10 * 86_400_000),
        ("with_states_per_s", True, True, start_ms - 20 * 86_400_000),
    ):
        prepared = batches(with_states, offset)
        # What the collector does once its inventory is loaded (runner.py): the objects
        # that exist now leave the cyclic GC's sight. Here those are the prepared batches,
        # 300,000 samples the writer never holds at once; left in sight, every full
        # collection walked them all, a quarter of the client's CPU (py-spy).
        gc.collect()
        gc.freeze()
        clock = StreamClock()
        buffer = rollups.RollupBuffer(clock=clock) if buffered else None
        profiler = cProfile.Profile() if args.profile and label == "samples_per_s" else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        for batch in prepared:
            clock.now_s = batch.samples[-1].t / 1000
            report = storage.write_batch(batch, rollups=buffer)
            assert report.samples_inserted == len(batch.samples), report
        if buffer is not None:
            storage.flush_rollups(buffer, everything=True)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        gc.unfreeze()
        figures[label] = round(args.samples / wall)
        # CPU of this process only (a busy machine inflates wall time far more); the
        # database's own work is in it for SQLite, not for PostgreSQL (another process).
        figures[label.replace("_per_s", "_per_cpu_s")] = round(args.samples / cpu)
        check_rollups(offset, args.samples)
    return figures


class StreamClock:
    """The stream's own time, as the buffer's clock: the newest sample handed over."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def check_rollups(offset_ms: int, samples: int) -> None:
    """Every sample is counted once in each tier (the figure would mean nothing otherwise)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for resolution in (60, 3600, 86400):
            cursor.execute(
                "SELECT SUM(count) FROM monitoring_rollup WHERE resolution = %s "
                "AND bucket >= %s AND bucket < %s",
                [resolution, offset_ms // 1000 - 2 * 86_400, offset_ms // 1000 + 2 * 86_400],
            )
            total = cursor.fetchone()[0]
            assert total == samples, (resolution, total, samples)


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.small:
        args.backend, args.samples, args.devices = "sqlite", 50_000, 5_000
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    with tempfile.TemporaryDirectory(prefix="resmon-ingest-") as tmp:
        env["RESMON_DATA_DIR"] = tmp
        env.pop("DATABASE_URL", None)
        if args.backend == "postgres":
            import psycopg

            with psycopg.connect(PG_URL + "postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
                admin.execute(f"CREATE DATABASE {PG_DB}")
            env["DATABASE_URL"] = PG_URL + PG_DB
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--devices",
                    str(args.devices),
                    "--samples",
                    str(args.samples),
                    *(["--batch", str(args.batch)] if args.batch else []),
                    *(["--profile", str(Path(args.profile).resolve())] if args.profile else []),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            if args.backend == "postgres":
                with psycopg.connect(PG_URL + "postgres", autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    if done.returncode != 0:
        raise SystemExit(f"ingest bench failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        json.dumps(
            {
                "bench": "ingest",
                "backend": args.backend,
                **figures,
                "samples": args.samples,
                "load1": float(load),
            }
        )
    )


if __name__ == "__main__":
    main()
