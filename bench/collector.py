"""The collector against the simulator: checks per CPU-second, schedule lag, memory.

    .venv/bin/python bench/collector.py --devices 10000 --seconds 60 --probe tcp
    .venv/bin/python bench/collector.py --devices 10000 --seconds 60 --probe icmp
    .venv/bin/python bench/collector.py --probe icmp --probe-only   # the probe alone
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

ICMP needs no simulator (Linux answers echo on every 127.x.y.z), but runs against the
simulator's addresses all the same; it needs root or CAP_NET_RAW. ``--probe-only`` runs
just the probe class in this process, ``--concurrency`` checks in flight, for
``--seconds``, without scheduler or storage (``{"bench": "probe", "checks_per_cpu_s"}``):
the ceiling the collector's own costs come on top of.
"""

from __future__ import annotations

import argparse
import json
import os
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
    thread_cpu_seconds,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--interval", type=float, default=10.0, help="check interval (s)")
    parser.add_argument("--probe", choices=["tcp", "http", "icmp"], default="tcp")
    parser.add_argument(
        "--probe-only", action="store_true", help="the probe alone, in-process (icmp only)"
    )
    parser.add_argument("--concurrency", type=int, default=500, help="with --probe-only")
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
                        # --native (C frames too) cannot be combined with --nonblocking.
                        *(
                            ["--native"]
                            if os.environ.get("BENCH_PROFILE_NATIVE")
                            else ["--nonblocking"]
                        ),
                        "-f",
                        "raw" if profile.endswith(".txt") else "flamegraph",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu0, wall0 = cpu_seconds(collector.pid), time.time()
            loop0 = thread_cpu_seconds(collector.pid, collector.pid)
            sim0 = cpu_seconds(simulator.pid)
            time.sleep(seconds)
            cpu1, wall1 = cpu_seconds(collector.pid), time.time()
            loop1 = thread_cpu_seconds(collector.pid, collector.pid)
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
        # The event loop's thread (probes, scheduler, state machine) apart from the rest
        # (the writer thread: storage), so each side's cost can be followed on its own.
        loop_cpu = loop1 - loop0
        return {
            "bench": "collector",
            "probe": probe,
            "devices": devices,
            "interval_s": interval,
            "seconds": round(elapsed, 1),
            "checks_per_s": round(count / elapsed, 1),
            "checks_per_cpu_s": round(count / cpu, 1) if cpu else None,
            "cpu_share": round(cpu / elapsed, 3),
            "loop_thread_cpu_share": round(loop_cpu / elapsed, 3),
            "checks_per_loop_cpu_s": round(count / loop_cpu, 1) if loop_cpu else None,
            "lag_p50_ms": info.get("lag_p50_ms"),
            "lag_p99_ms": info.get("lag_p99_ms"),
            "rss_mb": round(rss, 1),
            "success_ratio": round(ok / count, 4) if count else None,
            "skipped_total": info.get("skipped_total"),
            "failures": failures,
            "simulator_cpu_share": round((sim1 - sim0) / elapsed, 3),
        }


def probe_only(
    probe_name: str, devices: int, seconds: float, concurrency: int
) -> dict[str, object]:
    """Checks per CPU-second of the probe class alone, loopback addresses, no storage."""
    import asyncio
    import os
    import sys

    if probe_name != "icmp":
        raise SystemExit("--probe-only: only --probe icmp (it needs no simulator)")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
    import uvloop

    from resourcemonitor.monitoring.probes import ProbeTarget
    from resourcemonitor.monitoring.probes.icmp import IcmpProbe

    targets = [
        ProbeTarget(f"127.{61 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}") for i in range(devices)
    ]
    counts = {"ok": 0, "all": 0}

    async def worker(probe: IcmpProbe, start: int, end_at: float) -> None:
        loop = asyncio.get_running_loop()
        index = start
        while loop.time() < end_at:
            try:
                async with asyncio.timeout(2.0):
                    result = await probe.check(targets[index % devices])
                counts["ok"] += result.ok
            except TimeoutError:
                pass
            counts["all"] += 1
            index += concurrency

    async def main() -> tuple[float, float]:
        probe = IcmpProbe(concurrency=concurrency)
        loop = asyncio.get_running_loop()
        first = await probe.check(targets[0])
        if not first.ok:
            raise SystemExit(f"ICMP does not work here: {first.text}")
        cpu0, wall0 = time.process_time(), time.time()
        end_at = loop.time() + seconds
        await asyncio.gather(*(worker(probe, i, end_at) for i in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.time() - wall0
        await probe.close()
        return cpu, wall

    prioritized()  # as the collector is in the other modes
    cpu, wall = uvloop.run(main())
    return {
        "bench": "probe",
        "probe": probe_name,
        "targets": devices,
        "concurrency": concurrency,
        "seconds": round(wall, 1),
        "checks_per_s": round(counts["all"] / wall, 1),
        "checks_per_cpu_s": round(counts["all"] / cpu, 1) if cpu else None,
        "success_ratio": round(counts["ok"] / counts["all"], 4) if counts["all"] else None,
        "rss_mb": round(rss_mb(os.getpid(), "VmHWM"), 1),
    }


def main() -> None:
    args = parse_args()
    if args.probe_only:
        announce(f"probe bench: {args.probe} alone, {args.concurrency} in flight")
        emit(probe_only(args.probe, args.devices, min(args.seconds, 90.0), args.concurrency))
        return
    if args.small:
        for probe in ("tcp", "http"):
            emit(run(500, 15.0, 5.0, probe))
        return
    announce(f"collector bench: {args.devices} devices, {args.probe}, {args.seconds} s")
    emit(run(args.devices, args.seconds, args.interval, args.probe, args.profile))


if __name__ == "__main__":
    main()
