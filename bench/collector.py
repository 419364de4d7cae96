"""The collector against the simulator: checks per CPU-second, schedule lag, memory.

    .venv/bin/python bench/collector.py --devices 10000 --seconds 60 --probe tcp
    .venv/bin/python bench/collector.py --small          # make bench: 500 devices, 15 s

The simulator runs in its own process; the real collector (``resmon collect``) in
another, on a temporary SQLite data directory. Every simulated device is pinned up
first, so the success ratio measures the collector, not the simulator's weather.
CPU is the collector's user+system time from /proc over the measured window (after a
warm-up of one interval), so it includes storage (the writer thread). Lag p50/p99 come
from the collector's own heartbeat (a 60 s window); the success ratio from the samples
it stored. Prints one JSON line:

    {"bench": "collector", "probe", "devices", "checks_per_s", "checks_per_cpu_s",
     "lag_p50_ms", "lag_p99_ms", "rss_mb", "success_ratio", ...}
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    RESMON,
    ROOT,
    announce,
    bench_env,
    cpu_seconds,
    emit,
    force_all_up,
    prioritized,
    rss_mb,
    seed_devices,
    start_simulator,
    stop,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--interval", type=float, default=10.0, help="check interval (s)")
    parser.add_argument("--probe", choices=["tcp", "http"], default="tcp")
    parser.add_argument(
        "--profile", metavar="FILE", help="also record the collector with py-spy (a flame SVG)"
    )
    parser.add_argument("--small", action="store_true", help="500 devices, 15 s, tcp+http")
    return parser.parse_args()


def run(
    devices: int, seconds: float, interval: float, probe: str, profile: str | None = None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="resmon-bench-") as tmp:
        data_dir = Path(tmp)
        env = bench_env(data_dir, RESMON_INVENTORY_REFRESH_S="3600")
        simulator, control, inventory = start_simulator(devices, data_dir)
        collector = None
        try:
            force_all_up(control, inventory)
            seed_devices(env, inventory, method=probe, interval=interval)
            warmup = interval + 2.0
            log = (data_dir / "collector.log").open("wb")
            collector = subprocess.Popen(
                [RESMON, "collect", "--duration", str(warmup + seconds + 3)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=prioritized,
            )
            time.sleep(warmup)
            if collector.poll() is not None:
                raise SystemExit((data_dir / "collector.log").read_text())
            spy = None
            if profile:
                spy = subprocess.Popen(
                    [
                        str(ROOT / ".venv" / "bin" / "py-spy"),
                        "record",
                        "-p",
                        str(collector.pid),
                        "-d",
                        str(int(seconds)),
                        "-r",
                        "200",
                        "-o",
                        profile,
                        "--nonblocking",
                        "-f",
                        "raw" if profile.endswith(".txt") else "flamegraph",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu0, wall0 = cpu_seconds(collector.pid), time.time()
            sim0 = cpu_seconds(simulator.pid)
            time.sleep(seconds)
            cpu1, wall1 = cpu_seconds(collector.pid), time.time()
            sim1 = cpu_seconds(simulator.pid)
            rss = rss_mb(collector.pid, "VmHWM")
            if spy is not None:
                spy.wait(timeout=60)
            # The heartbeat is written every 5 s: wait for one after the window.
            time.sleep(5.5)
            database = sqlite3.connect(data_dir / "resmon.sqlite3")
            count, ok = database.execute(
                "SELECT count(*), coalesce(sum(ok), 0) FROM monitoring_sample"
                " WHERE t >= ? AND t < ?",
                (int(wall0 * 1000), int(wall1 * 1000)),
            ).fetchone()
            failures = dict(
                database.execute(
                    "SELECT error, count(*) FROM monitoring_sample WHERE t >= ? AND t < ?"
                    " AND NOT ok GROUP BY error",
                    (int(wall0 * 1000), int(wall1 * 1000)),
                ).fetchall()
            )
            info = json.loads(
                database.execute(
                    "SELECT info FROM monitoring_heartbeat WHERE component = 'collector'"
                    " ORDER BY last_seen_at DESC LIMIT 1"
                ).fetchone()[0]
            )
            database.close()
        finally:
            if collector is not None:
                stop(collector)
                tail = (data_dir / "collector.log").read_text(errors="replace")[-2000:]
                announce("collector log (tail):", tail)
            stop(simulator)
        elapsed = wall1 - wall0
        cpu = cpu1 - cpu0
        return {
            "bench": "collector",
            "probe": probe,
            "devices": devices,
            "interval_s": interval,
            "seconds": round(elapsed, 1),
            "checks_per_s": round(count / elapsed, 1),
            "checks_per_cpu_s": round(count / cpu, 1) if cpu else None,
            "cpu_share": round(cpu / elapsed, 3),
            "lag_p50_ms": info.get("lag_p50_ms"),
            "lag_p99_ms": info.get("lag_p99_ms"),
            "rss_mb": round(rss, 1),
            "success_ratio": round(ok / count, 4) if count else None,
            "skipped_total": info.get("skipped_total"),
            "failures": failures,
            "simulator_cpu_share": round((sim1 - sim0) / elapsed, 3),
        }


def main() -> None:
    args = parse_args()
    if args.small:
        for probe in ("tcp", "http"):
            emit(run(500, 15.0, 5.0, probe))
        return
    announce(f"collector bench: {args.devices} devices, {args.probe}, {args.seconds} s")
    emit(run(args.devices, args.seconds, args.interval, args.probe, args.profile))


if __name__ == "__main__":
    main()
