"""JSON device feeds: fetch (asyncio), parse (pure), apply (ORM, on the writer thread).

A feed answers with the original exercise's shape::

    [{"id": 1, "name": "core-1", "ip_address": "10.0.0.1", "status": true}, ...]

Each valid entry creates or updates one ``Device`` (``check_method = feed``, keyed by the
feed and ``external_id = str(id)``) and counts as one check result: ``status`` true is a
success, false is a failure (``feed_down``). The feed already judged the device, so feed
devices have ``fail_threshold = 1``.

A feed that cannot be used as a whole (unreachable, not 200, too big, not JSON, not a
list) records the reason in ``Feed.last_error`` and its devices become ``unknown`` — we
no longer know, which is not the same as down. Bad entries (a missing field, a wrong
type, a duplicate id or name, a name another device already has) are skipped and counted
in ``last_error``; the rest of the feed still applies.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from django.db import transaction
from django.utils import timezone

from resourcemonitor.inventory.models import CheckMethod, Device, Feed
from resourcemonitor.monitoring.collector.inventory import (
    DEVICE_COLUMNS,
    DeviceConfig,
    chunked,
    device_config,
)
from resourcemonitor.monitoring.probes.errors import format_seconds
from resourcemonitor.monitoring.probes.http import classify_client_error, read_capped

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_LAST_ERROR = 500
# Bodies above this are parsed on a worker thread, not on the event loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
_MAX_NAME = 200
_MAX_ADDRESS = 255
_MAX_EXTERNAL_ID = 100
_MAX_REASONS_SHOWN = 5


class FeedError(Exception):
    """The feed as a whole is unusable; the message is one line for ``last_error``."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    external_id: str
    name: str
    address: str
    status: bool


@dataclass
class ParsedFeed:
    entries: list[FeedEntry] = field(default_factory=list)
    # One short reason per skipped entry, e.g. "entry 3: missing 'name'".
    problems: list[str] = field(default_factory=list)
    total: int = 0


@dataclass
class FeedApplied:
    """What applying a feed did, for the asyncio side to turn into results."""

    devices: list[tuple[DeviceConfig, bool]] = field(default_factory=list)
    # Enabled devices of this feed that its answer no longer lists.
    missing: list[int] = field(default_factory=list)
    last_error: str = ""


# -- parse (pure) ----------------------------------------------------------------------


def _entry_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not an object"
    for key in ("id", "name", "ip_address", "status"):
        if key not in item:
            return f"missing '{key}'"
    ident = item["id"]
    if isinstance(ident, bool) or not isinstance(ident, int | str):
        return "'id' must be an integer or a string"
    if isinstance(ident, str) and not ident.strip():
        return "'id' is empty"
    if len(str(ident)) > _MAX_EXTERNAL_ID:
        return f"'id' longer than {_MAX_EXTERNAL_ID} characters"
    name = item["name"]
    if not isinstance(name, str) or not name.strip():
        return "'name' must be a non-empty string"
    if len(name.strip()) > _MAX_NAME:
        return f"'name' longer than {_MAX_NAME} characters"
    address = item["ip_address"]
    if not isinstance(address, str) or not address.strip() or len(address.split()) != 1:
        return "'ip_address' must be a non-empty string without spaces"
    if len(address.strip()) > _MAX_ADDRESS:
        return f"'ip_address' longer than {_MAX_ADDRESS} characters"
    if not isinstance(item["status"], bool):
        return "'status' must be true or false"
    return None


def parse_feed(body: bytes) -> ParsedFeed:
    """Validate a feed body. Raises ``FeedError`` when it is unusable as a whole."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise FeedError("invalid JSON: nested too deeply") from None
    if not isinstance(data, list):
        raise FeedError(f"expected a JSON list of devices, got a JSON {_json_type(data)}")
    parsed = ParsedFeed(total=len(data))
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    for index, item in enumerate(data):
        problem = _entry_problem(item)
        if problem is None:
            external_id = str(item["id"]).strip()
            name = item["name"].strip()
            if external_id in seen_ids:
                problem = f"duplicate id {external_id}"
            elif name in seen_names:
                problem = f"duplicate name '{name}'"
        if problem is not None:
            parsed.problems.append(f"entry {index}: {problem}")
            continue
        seen_ids.add(external_id)
        seen_names.add(name)
        parsed.entries.append(
            FeedEntry(external_id, name, item["ip_address"].strip(), item["status"])
        )
    return parsed


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def summarize_problems(problems: list[str], total: int) -> str:
    """``last_error`` for partly bad feeds: a count, then the first few reasons."""
    if not problems:
        return ""
    shown = "; ".join(problems[:_MAX_REASONS_SHOWN])
    more = len(problems) - _MAX_REASONS_SHOWN
    suffix = f"; and {more} more" if more > 0 else ""
    return f"skipped {len(problems)} of {total} entries: {shown}{suffix}"[:MAX_LAST_ERROR]


# -- fetch (asyncio) -------------------------------------------------------------------


async def fetch_feed(session: aiohttp.ClientSession, url: str, *, timeout_s: float) -> bytes:
    """GET the feed: 200 and at most 10 MiB, within ``timeout_s``; else ``FeedError``."""
    try:
        async with asyncio.timeout(timeout_s), session.get(url) as response:
            if response.status != 200:
                raise FeedError(f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_FEED_BYTES:
                raise FeedError("body larger than 10 MiB")
            body = await read_capped(response, MAX_FEED_BYTES + 1)
    except TimeoutError:
        raise FeedError(f"timeout after {format_seconds(timeout_s)} s") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise FeedError(classify_client_error(exc, timeout=timeout_s).text) from None
    if len(body) > MAX_FEED_BYTES:
        raise FeedError("body larger than 10 MiB")
    return body


async def fetch_and_parse(
    session: aiohttp.ClientSession, url: str, *, timeout_s: float
) -> ParsedFeed:
    body = await fetch_feed(session, url, timeout_s=timeout_s)
    if len(body) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(parse_feed, body)
    return parse_feed(body)


# -- apply (ORM; runs on the writer thread) --------------------------------------------


def _names_outside_feed(feed_id: int, names: list[str]) -> set[str]:
    taken: set[str] = set()
    for chunk in chunked(names):
        taken.update(
            Device.objects.filter(name__in=chunk)
            .exclude(feed_id=feed_id)
            .values_list("name", flat=True)
        )
    return taken


@transaction.atomic
def apply_feed(feed_id: int, parsed: ParsedFeed, *, polled_at: datetime) -> FeedApplied:
    """Create or update the feed's devices from a parsed answer; record the poll."""
    feed = Feed.objects.filter(id=feed_id).first()
    if feed is None:  # removed while we were polling it
        return FeedApplied()
    existing = {
        row["external_id"]: row
        for row in Device.objects.filter(feed_id=feed_id).values(
            "id", "external_id", "name", "address"
        )
    }
    name_owner = {row["name"]: external_id for external_id, row in existing.items()}
    taken = _names_outside_feed(feed_id, [entry.name for entry in parsed.entries])

    problems = list(parsed.problems)
    to_create: list[Device] = []
    to_update: list[Device] = []
    status_by_external_id: dict[str, bool] = {}
    now = timezone.now()
    for entry in parsed.entries:
        if entry.name in taken:
            problems.append(
                f"id {entry.external_id}: name '{entry.name}' belongs to another device"
            )
            continue
        owner = name_owner.get(entry.name)
        if owner is not None and owner != entry.external_id:
            problems.append(
                f"id {entry.external_id}: name '{entry.name}' is still used by id {owner}"
            )
            continue
        row = existing.get(entry.external_id)
        if row is None:
            to_create.append(
                Device(
                    feed=feed,
                    external_id=entry.external_id,
                    name=entry.name,
                    address=entry.address,
                    check_method=CheckMethod.FEED,
                    check_port=None,
                    check_path="",
                    check_interval_s=feed.interval_s,
                    check_timeout_s=min(feed.timeout_s, feed.interval_s),
                    fail_threshold=1,
                    recover_threshold=1,
                )
            )
        elif row["name"] != entry.name or row["address"] != entry.address:
            to_update.append(
                Device(id=row["id"], name=entry.name, address=entry.address, updated_at=now)
            )
        status_by_external_id[entry.external_id] = entry.status
    if to_create:
        Device.objects.bulk_create(to_create)
    if to_update:
        Device.objects.bulk_update(to_update, ["name", "address", "updated_at"])

    applied = FeedApplied()
    for row in Device.objects.filter(feed_id=feed_id, enabled=True).values_list(
        *DEVICE_COLUMNS, "external_id"
    ):
        config, external_id = device_config(row[:-1]), row[-1]
        if external_id in status_by_external_id:
            applied.devices.append((config, status_by_external_id[external_id]))
        else:
            applied.missing.append(config.id)
    applied.last_error = summarize_problems(problems, parsed.total)
    Feed.objects.filter(id=feed_id).update(
        last_polled_at=polled_at,
        last_ok_at=polled_at,
        last_error=applied.last_error,
        device_count=Device.objects.filter(feed_id=feed_id).count(),
    )
    return applied


def record_feed_failure(feed_id: int, error: str, *, polled_at: datetime) -> list[int]:
    """Record a failed poll; return the feed's enabled devices (they become unknown)."""
    Feed.objects.filter(id=feed_id).update(
        last_polled_at=polled_at, last_error=error[:MAX_LAST_ERROR]
    )
    return list(Device.objects.filter(feed_id=feed_id, enabled=True).values_list("id", flat=True))
