"""Fault injection: real collector processes, a real database, counted samples.

Devices are TCP checks of a real listener on 127.0.0.1 (accept, close). Each device's
schedule is anchored to the wall clock (scheduler.first_due), so every sample falls in
one slot ``round((t - phase) / interval)``; counting per slot gives, per device:

- doubled: slots holding more than one sample (the (t, device_id) key cannot stop two
  samples of one slot with different t, so this is the real double check);
- lost: slots between a device's first and last sample that hold none, outside the
  windows when no collector ran (``down`` windows: restart time is a gap, not a loss).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resourcemonitor.monitoring.collector.scheduler import phase_fraction

INTERVAL_S = 1.0
# SIGTERM to exit: ~1-3 s measured (2 s of it the grace for checks in flight); the bound
# leaves room for a machine shared with other test runs.
STOP_BOUND_S = 8.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"

SEED = f"""
import sys
import django
django.setup()
from resourcemonitor.inventory.models import Device
count, port = int(sys.argv[1]), int(sys.argv[2])
Device.objects.bulk_create(
    Device(name=f"d{{i:04d}}", address="127.0.0.1", check_method="tcp", check_port=port,
           check_interval_s={INTERVAL_S}, check_timeout_s=0.5)
    for i in range(count)
)
"""


class Listener:
    """A TCP server that accepts and closes: every check succeeds, quickly."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TcpProxy:
    """A test-only TCP proxy in front of PostgreSQL that can be cut and restored.

    Cutting closes every proxied connection and refuses new ones: to the collector it
    is exactly a database that went away (server closed the connection, then
    connection refused), without stopping the PostgreSQL the other tests share.
    """

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if self.cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def set_cut(self, cut: bool) -> None:
        if cut:
            self.cut.set()
            with self._lock:
                pairs, self._pairs = self._pairs, []
            for a, b in pairs:
                for s in (a, b):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()
        else:
            self.cut.clear()

    def close(self) -> None:
        self.set_cut(True)
        self._closed.set()
        self.server.close()


@dataclass
class Counts:
    devices: int
    expected: int
    stored: int
    lost: int
    doubled: int
    per_device_lost_max: int
    detail: dict[str, Any] = field(default_factory=dict)
    # Checks that ran more than half an interval late: each landed in the next slot,
    # leaving its own empty. A schedule hiccup, reported; neither lost nor doubled data.
    late: int = 0

    def line(self, fault: str) -> str:
        return (
            f"FAULT {fault}: devices={self.devices} expected={self.expected} "
            f"stored={self.stored} lost={self.lost} doubled={self.doubled} "
            f"late={self.late} max_lost_per_device={self.per_device_lost_max}"
        )


def count_samples(
    rows: list[tuple[int, int]],
    device_ids: list[int],
    *,
    window: tuple[float, float],
    down: list[tuple[float, float]] = (),  # type: ignore[assignment]
    interval_s: float = INTERVAL_S,
) -> Counts:
    """Count (t ms, device_id) rows against each device's slots within ``window`` (epoch s)."""
    by_device: dict[int, list[int]] = {i: [] for i in device_ids}
    for t, device_id in rows:
        if device_id in by_device and window[0] * 1000 <= t <= window[1] * 1000:
            by_device[device_id].append(t)
    expected = stored = lost = doubled = worst = late = 0
    for device_id, ts in by_device.items():
        offset = phase_fraction(device_id) * interval_s
        slots = Counter(round((t / 1000.0 - offset) / interval_s) for t in ts)
        stored += len(ts)
        # A check delayed past half an interval rounds into the next slot: that slot has
        # two, its own none. Give it back to its own slot and count it late.
        for slot in sorted(s for s, n in slots.items() if n > 1):
            if slots[slot - 1] == 0:
                slots[slot] -= 1
                slots[slot - 1] = 1
                late += 1
        slots = +slots  # drop the zero counts the lookups above left
        doubled += sum(n - 1 for n in slots.values() if n > 1)
        first = int((window[0] - offset) // interval_s) + 2
        last = int((window[1] - offset) // interval_s) - 1
        missing = 0
        for slot in range(first, last + 1):
            at = slot * interval_s + offset
            if any(a - interval_s <= at <= b + interval_s for a, b in down):
                continue
            expected += 1
            if slot not in slots:
                missing += 1
        lost += missing
        worst = max(worst, missing)
    return Counts(len(device_ids), expected, stored, lost, doubled, worst, late=late)


class Database:
    """A fresh database for one scenario: a SQLite file, or a PostgreSQL database."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        if kind == "sqlite":
            self.path = data_dir / "resmon.sqlite3"
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"resmon_faults_{os.getpid()}_{int(time.time() * 1000) % 1_000_000}"
            self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"
            self._admin(f"CREATE DATABASE {self.name}")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.kind == "postgres":
            self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path, timeout=30) as conn:
                return conn.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql).fetchall()

    def samples(self) -> list[tuple[int, int]]:
        return [
            (int(t), int(d)) for t, d in self.rows("SELECT t, device_id FROM monitoring_sample")
        ]

    def device_ids(self) -> list[int]:
        return [int(r[0]) for r in self.rows("SELECT id FROM inventory_device ORDER BY id")]


class Harness:
    """One scenario: its database, its data directory, its collector processes."""

    def __init__(self, tmp: Path, kind: str, devices: int) -> None:
        self.tmp = tmp
        self.db = Database(kind, tmp)
        self.listener = Listener()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        self.env.update(
            RESMON_DATA_DIR=str(tmp),
            DATABASE_URL=self.db.url,
            RESMON_BATCH_SECONDS="0.2",
            RESMON_INVENTORY_REFRESH_S="1",
            RESMON_WRITER_BUSY_TIMEOUT_S="1",
            RESMON_LOG_LEVEL="INFO",
        )
        self.resmon("migrate", "--noinput")
        subprocess.run(
            [sys.executable, "-c", SEED, str(devices), str(self.listener.port)],
            env={**self.env, "DJANGO_SETTINGS_MODULE": "resourcemonitor.settings"},
            check=True,
            timeout=60,
        )

    def resmon(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "resourcemonitor", *args],
            env=self.env,
            check=True,
            timeout=120,
            capture_output=True,
        )

    def collect(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.tmp / f"collector-{len(self.logs)}.log"
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "resourcemonitor", "collect", *args],
            env={**self.env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def wait_samples(self, minimum: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.db.rows("SELECT count(*) FROM monitoring_sample")[0][0] >= minimum:
                    return
            except Exception:  # the database may be mid-fault
                pass
            time.sleep(0.2)
        raise AssertionError(f"fewer than {minimum} samples after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs if p.exists())

    @staticmethod
    def terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> float:
        """SIGTERM; returns how long the process took to exit."""
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout)
        took = time.monotonic() - started
        print(f"SIGTERM: pid {process.pid} exited {process.returncode} after {took:.2f} s")
        return took

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.listener.close()
        self.db.drop()
