"""``resmon feeds add|list|remove``: manage the JSON device feeds the collector polls.

    resmon feeds add http://host/devices --interval 30 --timeout 5
    resmon feeds list [--json]
    resmon feeds remove http://host/devices

Bad input is a one-line error and a non-zero exit (``CommandError``).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from resourcemonitor.inventory.models import Feed

INTERVAL_RANGE = (1.0, 86400.0)
TIMEOUT_RANGE = (0.1, 120.0)
DEFAULT_TIMEOUT_S = 5.0
_validate_url = URLValidator(schemes=["http", "https"])


def clean_url(raw: str) -> str:
    url = raw.strip()
    if len(url) > 500:
        raise CommandError("feed URL is longer than 500 characters")
    try:
        _validate_url(url)
    except ValidationError:
        raise CommandError(f"not an http(s) URL: {raw!r}") from None
    return url


def clean_seconds(raw: str, *, name: str, bounds: tuple[float, float]) -> float:
    low, high = bounds
    try:
        value = float(raw)
    except ValueError:
        raise CommandError(f"{name} must be a number of seconds (got {raw!r})") from None
    if not low <= value <= high:  # also rejects nan
        raise CommandError(f"{name} must be from {low:g} to {high:g} seconds (got {raw})")
    return value


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {value!r}")


class Command(BaseCommand):
    help = "Add, list or remove JSON device feeds ([{id, name, ip_address, status}, ...])."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="{add,list,remove}")
        # Checked in handle(): a missing action is a one-line error, not a usage dump.
        actions.required = False
        add = actions.add_parser("add", help="register a feed (or update its timings)")
        add.add_argument("url")
        # Parsed in handle() so that a bad number is a one-line error.
        add.add_argument("--interval", default="30", metavar="S", help="poll every S seconds")
        add.add_argument(
            "--timeout",
            metavar="S",
            help="give up after S seconds (default 5, or the interval if that is shorter)",
        )
        listing = actions.add_parser("list", help="show the feeds and their last poll")
        listing.add_argument("--json", action="store_true", help="as a JSON list")
        remove = actions.add_parser("remove", help="remove a feed and its devices")
        remove.add_argument("url")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action")
        if not action:
            raise CommandError("say what to do: feeds add URL, feeds list or feeds remove URL")
        if action == "add":
            self.add(options)
        elif action == "list":
            self.list(as_json=options["json"])
        else:
            self.remove(options["url"])

    def add(self, options: dict[str, Any]) -> None:
        url = clean_url(options["url"])
        interval = clean_seconds(options["interval"], name="--interval", bounds=INTERVAL_RANGE)
        if options["timeout"] is None:
            timeout = min(DEFAULT_TIMEOUT_S, interval)
        else:
            timeout = clean_seconds(options["timeout"], name="--timeout", bounds=TIMEOUT_RANGE)
        if timeout > interval:
            raise CommandError(
                f"--timeout ({timeout:g} s) must not be longer than --interval ({interval:g} s)"
            )
        feed, created = Feed.objects.update_or_create(
            url=url, defaults={"interval_s": interval, "timeout_s": timeout, "enabled": True}
        )
        verb = "added" if created else "updated"
        self.stdout.write(f"{verb} feed {feed.url} (every {interval:g} s, timeout {timeout:g} s)")

    def list(self, *, as_json: bool) -> None:
        feeds = list(
            Feed.objects.order_by("url").values(
                "url",
                "interval_s",
                "timeout_s",
                "enabled",
                "device_count",
                "last_polled_at",
                "last_ok_at",
                "last_error",
            )
        )
        if as_json:
            self.stdout.write(json.dumps(feeds, indent=2, default=_iso))
            return
        if not feeds:
            self.stdout.write("no feeds (add one with: resmon feeds add URL)")
            return
        for feed in feeds:
            polled = feed["last_polled_at"]
            when = polled.strftime("%Y-%m-%d %H:%M:%S UTC") if polled else "never polled"
            state = "" if feed["enabled"] else " [disabled]"
            error = f"  error: {feed['last_error']}" if feed["last_error"] else ""
            self.stdout.write(
                f"{feed['url']}{state}  every {feed['interval_s']:g} s  "
                f"{feed['device_count']} devices  {when}{error}"
            )

    def remove(self, raw_url: str) -> None:
        url = raw_url.strip()
        deleted, _ = Feed.objects.filter(url=url).delete()
        if not deleted:
            raise CommandError(f"no feed with URL {url!r}")
        self.stdout.write(f"removed feed {url} and its devices")
