"""``resmon collect``: the collector process.

Checks every enabled device on its schedule, polls JSON feeds and writes the results.
SIGTERM or Ctrl-C stops scheduling, flushes what is queued and exits 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from resourcemonitor.monitoring.collector import Collector, Shard, run_collector
from resourcemonitor.monitoring.collector.inventory import Rendezvous
from resourcemonitor.monitoring.collector.runner import default_instance

MAX_CONCURRENCY = 100_000


def parse_concurrency(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CommandError(f"--concurrency must be a whole number (got {raw!r})") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise CommandError(f"--concurrency must be from 1 to {MAX_CONCURRENCY} (got {value})")
    return value


def parse_duration(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise CommandError(f"--duration must be a number of seconds (got {raw!r})") from None
    if not 0 < value <= 7 * 86400:
        raise CommandError(f"--duration must be from 0 to 604800 seconds (got {raw})")
    return value


class Command(BaseCommand):
    help = (
        "Run the collector: check every enabled device on its schedule, poll JSON device "
        "feeds and store the results. SIGTERM or Ctrl-C stops it cleanly."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="check every device once, write, and exit"
        )
        parser.add_argument(
            "--shard",
            default=None,
            metavar="K/N",
            help=(
                "check only devices with id %% N == K-1 (static sharding). Without it, "
                "devices are shared with the other live collectors (rendezvous hashing)"
            ),
        )
        # Numbers are parsed in handle(), so a bad value is a one-line error, not usage.
        parser.add_argument(
            "--concurrency",
            metavar="N",
            help="checks in flight at most (default RESMON_COLLECTOR_CONCURRENCY)",
        )
        parser.add_argument(
            "--duration", metavar="S", help="stop after S seconds (for tests and benchmarks)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        shard: Shard | Rendezvous
        instance = None
        if options["shard"] is None and not options["once"]:
            instance = default_instance(Shard())
            shard = Rendezvous(
                instance,
                heartbeat_s=settings.RESMON_COLLECTOR_HEARTBEAT_S,
                dead_beats=settings.RESMON_COLLECTOR_DEAD_BEATS,
            )
        else:
            # --once without --shard checks every device: a one-off, not a member.
            try:
                shard = Shard.parse(options["shard"] or "1/1")
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        concurrency = parse_concurrency(options["concurrency"])
        duration = parse_duration(options["duration"])
        collector = Collector(
            shard=shard,
            concurrency=concurrency,
            instance=instance,
            heartbeat_s=settings.RESMON_COLLECTOR_HEARTBEAT_S,
        )
        try:
            checks = run_collector(collector, once=options["once"], duration=duration)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        if options["once"]:
            self.stdout.write(f"{checks} checks done")
