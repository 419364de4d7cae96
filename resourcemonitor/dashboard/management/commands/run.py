"""``resmon run``: the whole product in one command, on the embedded SQLite database.

Migrates, starts the simulator, registers its devices, starts the collector, the alert
worker and the web as separate child processes (so each fails on its own), restarts a
child that dies, and stops everything on Ctrl-C or SIGTERM.

MQTT: when a broker answers at ``--mqtt`` (default ``RESMON_MQTT_URL``,
mqtt://127.0.0.1:1883), ``resmon ingest-mqtt`` runs as one more child; when none answers,
one line says so and the rest runs without it. ``--sim-mqtt`` also has the simulator
publish its devices' telemetry (CPU, memory, uptime) there, stored as per-device metrics.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from resourcemonitor.inventory.demo import fetch_simulator_inventory, register_simulated_network
from resourcemonitor.monitoring.management.commands.ingest_mqtt import BrokerUrl
from resourcemonitor.netaddr import BindError, parse_bind

RESTART_BACKOFF_MAX_S = 30.0
BROKER_CONNECT_TIMEOUT_S = 1.0


def broker_answers(broker: BrokerUrl, timeout: float = BROKER_CONNECT_TIMEOUT_S) -> bool:
    """Whether something accepts TCP connections at the broker's address."""
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Child:
    """One supervised process: how to start it and how often it has died."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()

    def poll_exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_for_http(url: str, *, timeout: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll_exited() is not None:
            raise CommandError(f"{child.name} exited with code {child.poll_exited()} at start")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise CommandError(f"{url} did not answer within {timeout:.0f} s")


class Command(BaseCommand):
    help = (
        "Run the whole product: migrate, start the simulator with N devices, register "
        "them, then the collector, the alert worker and the web. Ctrl-C stops everything."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--devices", type=int, default=16, help="simulated devices (0: none)")
        parser.add_argument("--bind", default="127.0.0.1:8000", help="web HOST:PORT")
        parser.add_argument(
            "--sim-bind", default="127.0.0.1:8001", help="simulator control API HOST:PORT"
        )
        parser.add_argument(
            "--interval", type=float, default=5.0, help="check interval of simulated devices (s)"
        )
        parser.add_argument("--seed", type=int, default=1, help="simulator seed")
        parser.add_argument(
            "--sim-address-base",
            default="127.10.0.1",
            help="loopback address of the first simulated device (one address per device)",
        )
        parser.add_argument(
            "--mqtt",
            metavar="URL",
            help="MQTT broker for `resmon ingest-mqtt` (default RESMON_MQTT_URL); it runs "
            "only when the broker answers",
        )
        parser.add_argument(
            "--no-mqtt", action="store_true", help="do not start `resmon ingest-mqtt`"
        )
        parser.add_argument(
            "--sim-mqtt",
            action="store_true",
            help="the simulator also publishes its devices' telemetry to the broker "
            "(stored as per-device metrics)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        devices: int = options["devices"]
        interval: float = options["interval"]
        if not 0 <= devices <= 20000:
            raise CommandError(f"--devices must be from 0 to 20000 (got {devices})")
        if not 0.5 <= interval <= 3600:
            raise CommandError(f"--interval must be from 0.5 to 3600 seconds (got {interval})")
        try:
            web_host, web_port = parse_bind(options["bind"])
            sim_host, sim_port = parse_bind(options["sim_bind"], loopback_only=True)
        except BindError as exc:
            raise CommandError(f"bind address: {exc}") from None
        mqtt_url = None if options["no_mqtt"] else options["mqtt"] or settings.RESMON_MQTT_URL
        if options["sim_mqtt"] and mqtt_url is None:
            raise CommandError("--sim-mqtt needs a broker: drop --no-mqtt")
        if mqtt_url is not None:
            try:
                broker = BrokerUrl.parse(mqtt_url)
            except ValueError as exc:
                raise CommandError(f"--mqtt: {exc}") from None
            if not broker_answers(broker):
                self.stdout.write(
                    f"MQTT: no broker answers at {broker.host}:{broker.port}; running without "
                    "ingest-mqtt (start one, or pass --mqtt URL)"
                )
                mqtt_url = None

        call_command("migrate", verbosity=0, interactive=False)
        env = dict(os.environ)
        # The demo's dashboard is readable without a login; writes still need one.
        env.setdefault("RESMON_PUBLIC_DASHBOARD", "1")
        python = sys.executable
        children: list[Child] = []
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            if devices:
                sim = Child(
                    "simulator",
                    [
                        python,
                        "-m",
                        "simulator",
                        "-d",
                        str(devices),
                        "--seed",
                        str(options["seed"]),
                        "--bind",
                        f"{sim_host}:{sim_port}",
                        "--address-base",
                        options["sim_address_base"],
                        # Its devices are HTTP-checked: status over MQTT would be refused.
                        *(
                            ["--mqtt", mqtt_url, "--mqtt-topics", "telemetry"]
                            if options["sim_mqtt"] and mqtt_url
                            else []
                        ),
                    ],
                    env,
                )
                sim.start()
                children.append(sim)
                control_url = f"http://{sim_host}:{sim_port}"
                _wait_for_http(f"{control_url}/healthz", timeout=60, child=sim)
                count = register_simulated_network(
                    devices=fetch_simulator_inventory(control_url), interval_s=interval
                )
                self.stdout.write(f"registered {count} simulated devices ({control_url})")
            collector = Child("collector", [python, "-m", "resourcemonitor", "collect"], env)
            web = Child(
                "web",
                [python, "-m", "resourcemonitor", "web", "--bind", options["bind"]],
                env,
            )
            alerts = Child("alerts", [python, "-m", "resourcemonitor", "alerts"], env)
            started = [collector, alerts, web]
            if mqtt_url is not None:
                # Through the environment: a password in the URL stays out of `ps`.
                ingester = Child(
                    "ingest-mqtt",
                    [python, "-m", "resourcemonitor", "ingest-mqtt"],
                    {**env, "RESMON_MQTT_URL": mqtt_url},
                )
                started.insert(2, ingester)
                self.stdout.write(f"MQTT: ingesting from {broker.host}:{broker.port}")
            for child in started:
                child.start()
                children.append(child)
            _wait_for_http(f"http://{web_host}:{web_port}/healthz", timeout=60, child=web)
            self.stdout.write(
                self.style.SUCCESS(f"Resource Monitor is running at http://{options['bind']}/")
            )
            self.stdout.write(
                "The dashboard is public in this demo; to make changes, create a user with "
                f"'resmon createsuperuser' and log in at http://{web_host}:{web_port}/login/. "
                "Ctrl-C stops everything."
            )
            self.stdout.flush()
            while not stopping:
                self._supervise(children)
                time.sleep(0.2)
        finally:
            for child in reversed(children):
                child.stop(timeout=8.0)
        self.stdout.write("stopped")

    def _supervise(self, children: list[Child]) -> None:
        """Restart any child that died, with a growing back-off; the others carry on."""
        now = time.monotonic()
        for child in children:
            code = child.poll_exited()
            if code is None:
                continue
            if child.next_start == 0.0:
                # A child that ran for a while before dying starts its back-off afresh.
                if now - child.started_at > 60:
                    child.restarts = 0
                delay = min(RESTART_BACKOFF_MAX_S, 0.5 * 2**child.restarts)
                child.next_start = now + delay
                self.stderr.write(
                    f"{child.name} exited with code {code}; restarting in {delay:.1f} s"
                )
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
