"""``resmon system``: the monitor's own components, for people and for health checks.

``resmon system`` prints every component with its last heartbeat; ``--json`` prints the
same as ``GET /api/v1/system``. ``--require collector`` exits 1 unless a collector is
reporting (``--this-host``: one on this machine), which makes it a container or systemd
health check for processes that serve no HTTP (the collector, the alert worker).
"""

from __future__ import annotations

import argparse
import json
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from resourcemonitor.api.system import system_status


def on_this_host(instance: str, host: str) -> bool:
    # Instances are named component[shard]@host:pid (Heartbeat.beat's default).
    return instance.partition("@")[2].rpartition(":")[0] == host


class Command(BaseCommand):
    help = (
        "Show the monitor's own components (web workers, collectors, ingesters, simulator) "
        "from their heartbeats. With --require, exit 1 unless such a component is reporting."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print JSON (as GET /api/v1/system)"
        )
        parser.add_argument(
            "--require",
            metavar="COMPONENT",
            action="append",
            default=[],
            help="exit 1 unless a COMPONENT (collector, web, ingester, …) is reporting; repeatable",
        )
        parser.add_argument(
            "--this-host",
            action="store_true",
            help="with --require: only count components running on this host",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            status = system_status()
        except DatabaseError as exc:
            raise CommandError(f"cannot read storage: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self._print_table(status)
        host = socket.gethostname()
        missing = []
        for component in options["require"]:
            alive = [
                row
                for row in status["components"]
                if row["component"] == component
                and row["alive"]
                and (not options["this_host"] or on_this_host(row["instance"], host))
            ]
            if not alive:
                missing.append(component)
        if missing:
            where = " on this host" if options["this_host"] else ""
            raise CommandError(f"not reporting{where}: {', '.join(missing)}")

    def _print_table(self, status: dict[str, Any]) -> None:
        rows = status["components"]
        if not rows:
            self.stdout.write("No component has reported in the last hour.")
            return
        header = ("COMPONENT", "INSTANCE", "STATE", "VERSION", "LAST BEAT", "RATE/S", "SPOOL")
        table = [header]
        for row in rows:
            table.append(
                (
                    row["component"],
                    row["instance"],
                    "reporting" if row["alive"] else "NOT REPORTING",
                    row["version"],
                    f"{row['age_s']:.0f} s ago",
                    "-" if row["rate_per_s"] is None else f"{row['rate_per_s']:g}",
                    "-" if row["spool"] is None else f"{row['spool']:g}",
                )
            )
        widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
        for line in table:
            self.stdout.write(
                "  ".join(
                    str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)
                ).rstrip()
            )
