"""Side by side: Prometheus + blackbox_exporter and our collector, same targets, one run.

    .venv/bin/python bench/vs_blackbox.py --targets 1000 --interval 5 --seconds 60
    .venv/bin/python bench/vs_blackbox.py --small     # make bench: 200 targets, 20 s

One simulator (its own process, every device pinned up) serves N HTTP targets. First
Debian's ``prometheus`` scrapes Debian's ``prometheus-blackbox-exporter`` ``/probe`` for
every target at the interval (module ``http_2xx``); both are installed with apt-get when
missing and started by hand on loopback ports. Then our collector (``resmon collect``, a
temporary SQLite database) checks the same targets at the same interval. After a warm-up
of two intervals, each side's CPU (user+system from /proc: both of their processes; ours
including storage, which runs in the collector process) is measured over the same window
and divided by the probes done in it: theirs counted by Prometheus
(``count_over_time(probe_success[...])``, queried from its API), ours by the samples
stored. Success ratios come from the same places. Prints one JSON line:

    {"bench": "vs_blackbox", "ours_cpu_ms_per_probe", "theirs_cpu_ms_per_probe", "ratio",
     "ours_success_ratio", "theirs_success_ratio", ...}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from _common import (
    RESMON,
    ROOT,
    announce,
    bench_env,
    cpu_seconds,
    emit,
    force_all_up,
    free_port,
    get_json,
    prioritized,
    seed_devices,
    start_simulator,
    stop,
    wait_for,
)

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: {timeout}s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window each")
    parser.add_argument("--small", action="store_true", help="200 targets, 5 s, 20 s")
    return parser.parse_args()


def ensure_installed() -> None:
    missing = [
        p
        for p, b in (("prometheus", "prometheus"), (BLACKBOX, BLACKBOX))
        if shutil.which(b) is None
    ]
    if not missing:
        return
    announce(f"installing Debian's {' and '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        check=True,
        timeout=900,
    )


def theirs(targets: list[str], interval: float, seconds: float, work: Path) -> dict[str, float]:
    bb_port, prom_port = free_port(), free_port()
    (work / "blackbox.yml").write_text(BLACKBOX_CONFIG.format(timeout=min(2.0, interval)))
    scrape = {
        "global": {
            "scrape_interval": f"{interval:g}s",
            "scrape_timeout": f"{min(interval, 3):g}s",
            "evaluation_interval": "60s",
        },
        "scrape_configs": [
            {
                "job_name": "blackbox",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": [{"targets": targets}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": f"127.0.0.1:{bb_port}"},
                ],
            }
        ],
    }
    # JSON is YAML: no YAML writer needed.
    (work / "prometheus.yml").write_text(json.dumps(scrape))
    blackbox = subprocess.Popen(
        [
            BLACKBOX,
            f"--config.file={work / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{bb_port}",
        ],
        stdout=(work / "blackbox.log").open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=prioritized,
    )
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=(work / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=prioritized,
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        wait_for(
            lambda: get_json(f"{api}/status/runtimeinfo")["status"] == "success",
            timeout=60,
            what="prometheus",
        )
        time.sleep(2 * interval + 2)
        pids = (blackbox.pid, prometheus.pid)
        cpu0 = sum(cpu_seconds(p) for p in pids)
        start = time.time()
        time.sleep(seconds)
        cpu1 = sum(cpu_seconds(p) for p in pids)
        end = time.time()
        window = f"{int(end - start)}s"
        # Scrapes started before ``end`` are stored with their start time when they finish:
        # wait for them, or the two queries below would see different sets of samples.
        time.sleep(min(interval, 3) + 1)

        def scalar(query: str) -> float:
            url = f"{api}/query?" + urllib.parse.urlencode({"query": query, "time": end})
            result = get_json(url)["data"]["result"]
            return float(result[0]["value"][1]) if result else 0.0

        probes = scalar(f"sum(count_over_time(probe_success[{window}]))")
        ok = scalar(f"sum(sum_over_time(probe_success[{window}]))")
    finally:
        stop(prometheus)
        stop(blackbox)
    return {"cpu_s": cpu1 - cpu0, "probes": probes, "ok": ok, "seconds": end - start}


def ours(inventory: list[dict], interval: float, seconds: float, work: Path) -> dict[str, float]:
    data_dir = work / "ours"
    data_dir.mkdir()
    env = bench_env(data_dir, RESMON_INVENTORY_REFRESH_S="3600")
    seed_devices(env, inventory, method="http", interval=interval, timeout=min(2.0, interval))
    collector = subprocess.Popen(
        [RESMON, "collect", "--duration", str(2 * interval + 2 + seconds + 3)],
        cwd=ROOT,
        env=env,
        stdout=(work / "collector.log").open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=prioritized,
    )
    try:
        time.sleep(2 * interval + 2)
        cpu0, start = cpu_seconds(collector.pid), time.time()
        time.sleep(seconds)
        cpu1, end = cpu_seconds(collector.pid), time.time()
    finally:
        stop(collector)
    database = sqlite3.connect(data_dir / "resmon.sqlite3")
    probes, ok = database.execute(
        "SELECT count(*), coalesce(sum(ok), 0) FROM monitoring_sample WHERE t >= ? AND t < ?",
        (int(start * 1000), int(end * 1000)),
    ).fetchone()
    database.close()
    return {"cpu_s": cpu1 - cpu0, "probes": probes, "ok": ok, "seconds": end - start}


def main() -> None:
    args = parse_args()
    if args.small:
        args.targets, args.interval, args.seconds = 200, 5.0, 20.0
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="resmon-vsbb-") as tmp:
        work = Path(tmp)
        simulator, control, inventory = start_simulator(args.targets, work)
        try:
            force_all_up(control, inventory)
            targets = [f"http://{e['address']}:{e['port']}/health" for e in inventory]
            announce(f"theirs: prometheus + blackbox_exporter, {len(targets)} targets")
            them = theirs(targets, args.interval, args.seconds, work)
            announce(f"ours: resmon collect, {len(targets)} targets")
            us = ours(inventory, args.interval, args.seconds, work)
        finally:
            stop(simulator)
    if not them["probes"] or not us["probes"]:
        raise SystemExit(f"no probes counted: theirs {them}, ours {us}")
    their_ms = 1000.0 * them["cpu_s"] / them["probes"]
    our_ms = 1000.0 * us["cpu_s"] / us["probes"]
    emit(
        {
            "bench": "vs_blackbox",
            "targets": args.targets,
            "interval_s": args.interval,
            "ours_cpu_ms_per_probe": round(our_ms, 3),
            "theirs_cpu_ms_per_probe": round(their_ms, 3),
            "ratio": round(our_ms / their_ms, 3),
            "ours_success_ratio": round(us["ok"] / us["probes"], 4),
            "theirs_success_ratio": round(them["ok"] / them["probes"], 4),
            "ours_probes_per_s": round(us["probes"] / us["seconds"], 1),
            "theirs_probes_per_s": round(them["probes"] / them["seconds"], 1),
        }
    )


if __name__ == "__main__":
    main()
