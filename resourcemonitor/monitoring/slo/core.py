"""SLOs and error budgets, computed from the rollups (never from raw history).

The accounting rules are written down in docs/slo.md; in short:

- A check counts once: one ``monitoring_sample`` row per check (retries inside a probe are
  one result), counted once in each rollup tier by the writer.
- Time without checks (``unknown``, collector stopped, before the device existed) is *not
  measured*: it is neither good nor bad and shows up as ``coverage`` < 100 %.
- Maintenance: a 1-minute bucket whose start lies inside a maintenance occurrence
  ``[start, end)`` of the device is excluded from every figure.
- Windows are whole minutes: a rolling window ends where the current minute starts.

A window is summed from 1-day rollups (where the day tier is complete: not the current
day, whose row a writer holds until the day closes), corrected at a partial day at each
edge with 1-hour rollups, and at a partial hour with 1-minute rollups
(added or subtracted, whichever reads fewer rows); the last minutes, which a writer may
still hold open in memory (``rollups.open_horizon``), come from raw samples; minus the
minutes excluded by maintenance: O(devices x (days + edges)), flat as raw history grows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from resourcemonitor.inventory.models import (
    RECURRENCE_PERIOD,
    Device,
    MaintenanceWindow,
    Recurrence,
)
from resourcemonitor.monitoring.models import HISTOGRAM_COLUMNS, LATENCY_BUCKETS_MS, SloTarget
from resourcemonitor.monitoring.rollups import open_horizon, raw_counts

RAW = 0  # a segment read from raw samples (the minutes a writer may still hold open)
MINUTE = 60
HOUR = 3600
DAY = 86400
DEFAULT_TARGET = 99.9
# Rolling windows by name, plus "month" (the calendar month so far, UTC).
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
WINDOW_NAMES: tuple[str, ...] = (*WINDOWS, "month")
BURN_WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
}
# Burn rates over windows this short need RESMON_SLO_BURN_MIN_FAILED failed checks.
SHORT_BURN_WINDOW = timedelta(hours=1)
# The burn rate that projects the time of budget exhaustion ("the current burn").
CURRENT_BURN = timedelta(hours=1)
_IDS_PER_QUERY = 2000
# (device_id, resolution, bucket, count, ok_count): migration 0004. Sums read only it.
COVERING_INDEX = "rollup_slo_covering"


# -- counts over a window --------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    """Checks of one device (or group) over a window; ``histogram`` only when asked."""

    checks: int = 0
    ok: int = 0
    histogram: list[int] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.checks - self.ok

    def add(self, other: Counts, sign: int = 1) -> None:
        self.checks += sign * other.checks
        self.ok += sign * other.ok
        if other.histogram:
            if not self.histogram:
                self.histogram = [0] * len(other.histogram)
            for index, value in enumerate(other.histogram):
                self.histogram[index] += sign * value


def floor_to(seconds: int, step: int) -> int:
    return seconds - seconds % step


def ceil_to(seconds: int, step: int) -> int:
    return -(-seconds // step) * step


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


Segment = tuple[int, int, int]  # resolution (0: raw samples), first bucket, end (exclusive)


def _plan(
    start_s: int, end_s: int, tiers: tuple[int, ...] = (HOUR, MINUTE)
) -> list[tuple[Segment, int]]:
    """The rollup ranges (with a sign) whose sum is ``[start_s, end_s)``; minute-aligned.

    The coarsest tier covers the window rounded out to whole units; each partial unit at
    an edge is corrected from the next tier: the part outside the window subtracted, or
    the unit dropped and the part inside added, whichever reads at most half a unit.
    """
    if end_s <= start_s:
        return []
    unit, finer = tiers[0], tiers[1:]
    if not finer:
        return [((unit, start_s, end_s), 1)]
    if end_s - start_s <= 2 * unit:
        return _plan(start_s, end_s, finer)
    lo, hi = floor_to(start_s, unit), ceil_to(end_s, unit)
    plan: list[tuple[Segment, int]] = [((unit, lo, hi), 1)]
    for edge, outside_from, outside_to in ((lo, lo, start_s), (hi - unit, end_s, hi)):
        if outside_to <= outside_from:
            continue
        if outside_to - outside_from <= unit // 2:
            plan.extend((seg, -sign) for seg, sign in _plan(outside_from, outside_to, finer))
        else:
            plan.append(((unit, edge, edge + unit), -1))
            plan.extend(_plan(max(start_s, edge), min(end_s, edge + unit), finer))
    return plan


def day_tier_from() -> int | None:
    """The first day whose 1-day rollups are complete, or None when there are none.

    The oldest day row may have been started mid-day (the day tier came after the data:
    ``storage.backfill_day_rollups`` rebuilds it), so it is never trusted; its hours are.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(bucket) FROM monitoring_rollup WHERE resolution = %s", [DAY])
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0]) + DAY


def plan_window(
    start_s: int, end_s: int, *, horizon_s: int, day_from: int | None
) -> list[tuple[Segment, int]]:
    """Every range (with a sign) to sum for ``[start_s, end_s)``: minutes from
    ``horizon_s`` on from raw samples (a writer may still hold them), the rest from the
    rollups, with the 1-day tier from ``day_from`` on and up to the day holding
    ``horizon_s`` (a writer holds that day's row until the day closes)."""
    split = min(end_s, max(start_s, horizon_s))
    plan: list[tuple[Segment, int]] = []
    if split < end_s:
        plan.append(((RAW, split, end_s), 1))
    days_end = min(split, floor_to(horizon_s, DAY))
    if day_from is None or days_end <= max(start_s, day_from):
        return _plan(start_s, split) + plan
    days_from = max(start_s, day_from)
    return (
        _plan(start_s, days_from)
        + _plan(days_from, days_end, (DAY, HOUR, MINUTE))
        + _plan(days_end, split)
        + plan
    )


def _sum_segment(
    segment: Segment, device_ids: Sequence[int] | None, *, histogram: bool
) -> dict[int, list[int]]:
    """``{device_id: [checks, ok, h0 … h15]}`` over one range of one tier.

    One plain ``SUM`` per range: cheaper than one scan with a ``CASE`` per range (SQLite
    evaluates every ``CASE`` on every row; measured 5x slower on the 30-day report).
    """
    resolution, lo, hi = segment
    if resolution == RAW:
        return raw_counts(device_ids, lo, hi, histogram=histogram)
    fields = ["count", "ok_count", *(HISTOGRAM_COLUMNS if histogram else ())]
    table = "monitoring_rollup"
    if not histogram and device_ids is not None and connection.vendor == "sqlite":
        # Without statistics SQLite picks the primary key's index, which is not covering.
        table += f" INDEXED BY {COVERING_INDEX}"
    base = (
        f"SELECT device_id, {', '.join(f'SUM({name})' for name in fields)} FROM {table} "
        "WHERE resolution = %s AND bucket >= %s AND bucket < %s"
    )
    chunks: list[Sequence[int] | None]
    if device_ids is None:
        chunks = [None]
    else:
        ids = sorted(set(device_ids))
        chunks = [ids[i : i + _IDS_PER_QUERY] for i in range(0, len(ids), _IDS_PER_QUERY)]
    result: dict[int, list[int]] = {}
    with connection.cursor() as cursor:
        for chunk in chunks:
            sql, params = base, [resolution, lo, hi]
            if chunk is not None:
                sql += f" AND device_id IN ({', '.join(['%s'] * len(chunk))})"
                params.extend(chunk)
            cursor.execute(sql + " GROUP BY device_id", params)
            for row in cursor.fetchall():
                if row[1]:
                    result[row[0]] = [int(v or 0) for v in row[1:]]
    return result


def _sum_segments(
    segments: Iterable[Segment], device_ids: Sequence[int] | None, *, histogram: bool
) -> dict[Segment, dict[int, list[int]]]:
    """Every segment's sums, each row read once.

    Windows that share their end (a report and its burn windows) give ranges of one tier
    that share their end too: they are read as disjoint rings, newest first, and each
    range is the running total of its rings.
    """
    by_end: dict[tuple[int, int], set[int]] = defaultdict(set)
    for resolution, lo, hi in segments:
        by_end[(resolution, hi)].add(lo)
    sums: dict[Segment, dict[int, list[int]]] = {}
    for (resolution, hi), starts in by_end.items():
        running: dict[int, list[int]] = {}
        ring_end = hi
        for lo in sorted(starts, reverse=True):
            ring = _sum_segment((resolution, lo, ring_end), device_ids, histogram=histogram)
            running = dict(running)
            for device_id, values in ring.items():
                total = running.get(device_id)
                running[device_id] = (
                    values if total is None else [a + b for a, b in zip(total, values, strict=True)]
                )
            sums[(resolution, lo, hi)] = running
            ring_end = lo
    return sums


def multi_window_counts(
    device_ids: Sequence[int] | None,
    windows: Sequence[tuple[int, int]],
    *,
    histogram: bool = False,
    excluded: dict[int, list[tuple[int, int]]] | None = None,
) -> list[dict[int, Counts]]:
    """:func:`window_counts` for several windows at once.

    Every window's ranges are collected, each distinct range is summed once (windows
    with the same end share their end edge and their raw tail), and each window adds
    up its own ranges.
    """
    horizon = open_horizon()
    day_from = day_tier_from()
    bounds = [(floor_to(lo, MINUTE), ceil_to(hi, MINUTE)) for lo, hi in windows]
    plans = [plan_window(lo, hi, horizon_s=horizon, day_from=day_from) for lo, hi in bounds]
    segments = {segment for plan in plans for segment, _ in plan}
    sums = _sum_segments(segments, device_ids, histogram=histogram)
    results = []
    for (start_s, end_s), plan in zip(bounds, plans, strict=True):
        totals: dict[int, list[int]] = {}
        for segment, sign in plan:
            for device_id, values in sums[segment].items():
                total = totals.get(device_id)
                if total is None:
                    totals[device_id] = [sign * v for v in values]
                else:
                    for index, value in enumerate(values):
                        total[index] += sign * value
        for device_id, ranges in (excluded or {}).items():
            for range_from, range_to in ranges:
                lo, hi = max(range_from, start_s), min(range_to, end_s)
                if lo >= hi:
                    continue
                split = min(hi, max(lo, horizon))
                for segment in ((MINUTE, lo, split), (RAW, split, hi)):
                    if segment[1] >= segment[2]:
                        continue
                    part = _sum_segment(segment, [device_id], histogram=histogram)
                    for values in part.values():
                        total = totals.setdefault(device_id, [0] * len(values))
                        for index, value in enumerate(values):
                            total[index] -= value
        results.append(
            {
                device_id: Counts(values[0], values[1], values[2:] if histogram else [])
                for device_id, values in totals.items()
                if values[0] > 0
            }
        )
    return results


def window_counts(
    device_ids: Sequence[int] | None,
    start_s: int,
    end_s: int,
    *,
    histogram: bool = False,
    excluded: dict[int, list[tuple[int, int]]] | None = None,
) -> dict[int, Counts]:
    """Checks per device over ``[start_s, end_s)`` (minute-aligned), from the rollups.

    ``excluded`` maps a device to merged minute-aligned ``[from, to)`` ranges whose minute
    buckets are left out (maintenance). Devices with no checks are absent.
    """
    return multi_window_counts(
        device_ids, [(start_s, end_s)], histogram=histogram, excluded=excluded
    )[0]


# -- devices, targets, maintenance -----------------------------------------------------


@dataclass(slots=True)
class DeviceInfo:
    id: int
    name: str
    kind: str
    site_id: int | None
    site: str | None
    tag_ids: frozenset[int]
    interval_s: float
    target: float
    created_s: int


def load_devices(
    device_ids: Sequence[int] | None = None, group: str | None = None
) -> list[DeviceInfo]:
    """Devices in scope with their effective targets (two queries + the target rules)."""
    queryset = Device.objects.all()
    if device_ids is not None:
        queryset = queryset.filter(pk__in=list(device_ids))
    if group:
        queryset = queryset.filter(group_filter(group))
    rows = list(
        queryset.values_list(
            "id",
            "name",
            "kind",
            "site_id",
            "site__name",
            "check_interval_s",
            "slo_target",
            "created_at",
        )
    )
    tags: dict[int, set[int]] = defaultdict(set)
    through = Device.tags.through
    tag_rows = through.objects.all()
    if device_ids is not None or group:
        tag_rows = tag_rows.filter(device_id__in=[row[0] for row in rows])
    for device_id, tag_id in tag_rows.values_list("device_id", "tag_id"):
        tags[device_id].add(tag_id)
    rules = SloTarget.objects.as_lookup()
    devices = []
    for pk, name, kind, site_id, site, interval, own_target, created in rows:
        tag_ids = frozenset(tags.get(pk, ()))
        devices.append(
            DeviceInfo(
                id=pk,
                name=name,
                kind=kind,
                site_id=site_id,
                site=site,
                tag_ids=tag_ids,
                interval_s=float(interval),
                target=effective_target(own_target, kind, site_id, tag_ids, rules),
                created_s=floor_to(epoch(created), MINUTE),
            )
        )
    return devices


def effective_target(
    own: float,
    kind: str,
    site_id: int | None,
    tag_ids: Iterable[int],
    rules: dict[tuple[str, str], float],
) -> float:
    """The device's own target if set away from the default; else tag, site, kind rules."""
    if own != DEFAULT_TARGET:
        return own
    tag_targets = [rules[("tag", str(t))] for t in tag_ids if ("tag", str(t)) in rules]
    if tag_targets:
        return max(tag_targets)
    if site_id is not None and ("site", str(site_id)) in rules:
        return rules[("site", str(site_id))]
    return rules.get(("kind", kind), own)


class GroupError(ValueError):
    """A ``group=`` selector that cannot be understood."""


def parse_group(text: str) -> dict[str, str]:
    """``site:London,kind:switch,tag:core`` (or ``|`` between parts) → ``{dimension: value}``."""
    selectors: dict[str, str] = {}
    for part in text.replace("|", ",").split(","):
        part = part.strip()
        if not part:
            continue
        dimension, sep, value = part.partition(":")
        dimension, value = dimension.strip().lower(), value.strip()
        if not sep or dimension not in {"site", "kind", "tag"} or not value:
            raise GroupError(f"{part!r}: expected site:NAME, kind:KIND or tag:NAME")
        if dimension in selectors:
            raise GroupError(f"{dimension} given twice")
        selectors[dimension] = value
    if not selectors:
        raise GroupError("empty group")
    return selectors


def group_filter(text: str) -> Q:
    selectors = parse_group(text)
    query = Q()
    if "site" in selectors:
        query &= Q(site__name=selectors["site"])
    if "kind" in selectors:
        query &= Q(kind=selectors["kind"])
    if "tag" in selectors:
        query &= Q(tags__name=selectors["tag"])
    return query


def _occurrences(
    window: MaintenanceWindow, start: datetime, end: datetime
) -> list[tuple[int, int]]:
    """The window's occurrences overlapping ``[start, end)`` as epoch-second pairs."""
    period = RECURRENCE_PERIOD.get(Recurrence(window.recurrence or ""))
    length = window.ends_at - window.starts_at
    if period is None:
        if window.starts_at < end and window.ends_at > start:
            return [(epoch(window.starts_at), epoch(window.ends_at))]
        return []
    found = []
    first = max(0, (start - length - window.starts_at) // period)
    occurrence = window.starts_at + period * first
    while occurrence < end and (window.until is None or occurrence < window.until):
        stop = occurrence + length
        if window.until is not None:
            stop = min(stop, window.until)
        if stop > start:
            found.append((epoch(occurrence), epoch(stop)))
        occurrence += period
    return found


def maintenance_minutes(
    devices: Sequence[DeviceInfo], start_s: int, end_s: int
) -> dict[int, list[tuple[int, int]]]:
    """Per device, merged ranges of minute-bucket starts excluded by maintenance.

    A minute bucket ``b`` is excluded when ``occurrence.start <= b < occurrence.end``, so a
    range ``[s, e)`` excludes buckets from ``ceil(s)`` up to (not including) ``e``.
    """
    start = datetime.fromtimestamp(start_s, tz=UTC)
    end = datetime.fromtimestamp(end_s, tz=UTC)
    windows = (
        MaintenanceWindow.objects.filter(starts_at__lt=end)
        .filter(
            Q(recurrence=Recurrence.NONE, ends_at__gt=start)
            | (~Q(recurrence=Recurrence.NONE) & (Q(until__isnull=True) | Q(until__gt=start)))
        )
        .prefetch_related("devices", "sites", "tags")
    )
    ranges: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for window in windows:
        occurrences = [
            (ceil_to(lo, MINUTE), ceil_to(hi, MINUTE))
            for lo, hi in _occurrences(window, start, end)
        ]
        occurrences = [(lo, hi) for lo, hi in occurrences if lo < hi]
        if not occurrences:
            continue
        device_ids = {d.pk for d in window.devices.all()}
        site_ids = {s.pk for s in window.sites.all()}
        tag_ids = {t.pk for t in window.tags.all()}
        kinds = set(window.kinds or [])
        for device in devices:
            if (
                device.id in device_ids
                or device.site_id in site_ids
                or device.kind in kinds
                or device.tag_ids & tag_ids
            ):
                ranges[device.id].extend(occurrences)
    return {device_id: _merge_ranges(found) for device_id, found in ranges.items()}


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _excluded_seconds(ranges: Sequence[tuple[int, int]], start_s: int, end_s: int) -> int:
    return sum(max(0, min(hi, end_s) - max(lo, start_s)) for lo, hi in ranges)


# -- windows ---------------------------------------------------------------------------


def window_bounds(name: str, now: datetime) -> tuple[int, int]:
    """``(start_s, end_s)`` of a named window: whole minutes, ending where the current
    (still filling) minute starts, so every minute in it is complete."""
    end_s = floor_to(epoch(now), MINUTE)
    if name == "month":
        moment = now.astimezone(UTC)
        return epoch(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)), end_s
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; one of {', '.join(WINDOW_NAMES)}")
    return end_s - int(WINDOWS[name].total_seconds()), end_s


# -- figures ---------------------------------------------------------------------------


def burn_rate(
    counts: Counts | None, target: float, window: timedelta, *, min_failed: int | None = None
) -> float | None:
    """Bad share over the window divided by the allowed bad share (1 - target).

    None without checks. Windows of an hour or less read 0.0 until at least
    ``RESMON_SLO_BURN_MIN_FAILED`` checks failed in them (sparse probes, see docs/slo.md).
    """
    if counts is None or counts.checks <= 0:
        return None
    if min_failed is None:
        min_failed = settings.RESMON_SLO_BURN_MIN_FAILED
    if window <= SHORT_BURN_WINDOW and counts.bad < min_failed:
        return 0.0
    return (counts.bad / counts.checks) / (1 - target / 100)


def burn_rates(
    *, device_ids: list[int] | None, windows: list[timedelta], now: datetime
) -> dict[int, dict[timedelta, float | None]]:
    """Burn rate of each device's availability SLO over each window ending now.

    For multi-window burn-rate alerts (e.g. 1 h and 5 m both over 14.4). A burn rate of
    1.0 spends exactly the budget over the SLO window; None means no checks in that window
    (not measured). Windows end with the current minute; maintenance minutes are excluded;
    windows of ≤ 1 h read 0.0 until ``RESMON_SLO_BURN_MIN_FAILED`` checks failed in them.
    ``device_ids=None`` means every device. Every requested device is in the answer.
    """
    devices = load_devices(device_ids)
    result: dict[int, dict[timedelta, float | None]] = {d.id: {} for d in devices}
    _, end_s = window_bounds("1h", now)
    # Always a list: the sums then seek per device through the covering index.
    ids = [d.id for d in devices]
    min_failed = settings.RESMON_SLO_BURN_MIN_FAILED
    # One maintenance lookup for the longest window; window_counts clips to each window.
    longest = int(max(windows, default=timedelta(0)).total_seconds())
    excluded = maintenance_minutes(devices, end_s - longest, end_s)
    spans = [(end_s - int(window.total_seconds()), end_s) for window in windows]
    all_counts = multi_window_counts(ids, spans, excluded=excluded)
    for window, counts in zip(windows, all_counts, strict=True):
        for device in devices:
            result[device.id][window] = burn_rate(
                counts.get(device.id), device.target, window, min_failed=min_failed
            )
    return result


def group_burn_rates(
    *, group: str, target: float, windows: list[timedelta], now: datetime
) -> dict[timedelta, float | None]:
    """Like :func:`burn_rates` for all the checks of a group (``site:London,kind:switch``)."""
    devices = load_devices(group=group)
    _, end_s = window_bounds("1h", now)
    ids = [d.id for d in devices]
    result: dict[timedelta, float | None] = {}
    longest = int(max(windows, default=timedelta(0)).total_seconds())
    excluded = maintenance_minutes(devices, end_s - longest, end_s)
    spans = [(end_s - int(window.total_seconds()), end_s) for window in windows]
    all_counts = multi_window_counts(ids, spans, excluded=excluded)
    for window, counts in zip(windows, all_counts, strict=True):
        total = Counts()
        for part in counts.values():
            total.add(part)
        result[window] = burn_rate(total, target, window) if ids else None
    return result


def latency_share(histogram: Sequence[int], checks: int, threshold_ms: float) -> float | None:
    """Share (%) of checks whose latency was within ``threshold_ms`` (a bucket bound)."""
    if checks <= 0 or not histogram:
        return None
    index = LATENCY_BUCKETS_MS.index(threshold_ms)
    return 100.0 * sum(histogram[: index + 1]) / checks


def exhaustion(remaining_pct: float | None, *, window_s: int, burn: float | None) -> float | None:
    """Seconds until the budget is spent at ``burn``: 0 if spent, None if not burning."""
    if remaining_pct is None:
        return None
    if remaining_pct <= 0:
        return 0.0
    if not burn:
        return None
    # Burning at b spends the window's whole budget in window / b.
    return remaining_pct / 100 * window_s / burn


def budget_figures(
    counts: Counts | None,
    target: float,
    *,
    valid_s: int,
    interval_s: float | None,
    window_s: int,
    current_burn: float | None,
) -> dict[str, Any]:
    """SLI, coverage, budget and projected exhaustion for one device or group.

    ``interval_s`` converts checks to minutes (None for a group: no budget in minutes).
    """
    checks = counts.checks if counts else 0
    bad = counts.bad if counts else 0
    allowed = (1 - target / 100) * checks
    expected = valid_s / interval_s if interval_s else None
    figures: dict[str, Any] = {
        "target": target,
        "checks": checks,
        "failed": bad,
        "sli": None if checks == 0 else 100.0 * (checks - bad) / checks,
        "coverage": (None if not expected else round(min(1.0, checks / expected) * 100, 3)),
        "budget_checks": allowed,
        "budget_remaining_pct": None if checks == 0 else 100.0 * (1 - bad / allowed),
        "budget_remaining_min": (
            None if checks == 0 or not interval_s else (allowed - bad) * interval_s / 60
        ),
        "exhausted_at": None,
    }
    figures["exhausted_in_s"] = exhaustion(
        figures["budget_remaining_pct"], window_s=window_s, burn=current_burn
    )
    return figures


@dataclass(frozen=True, slots=True)
class Report:
    window: str
    start_s: int
    end_s: int
    items: list[dict[str, Any]]


def device_report(
    window: str,
    now: datetime,
    *,
    device_ids: Sequence[int] | None = None,
    group: str | None = None,
    with_burn: bool = True,
) -> Report:
    """Every device in scope with its SLI, coverage, budget and burn rates; worst first."""
    start_s, end_s = window_bounds(window, now)
    devices = load_devices(device_ids, group)
    # Always a list: the sums then seek per device through the covering index.
    ids = [d.id for d in devices]
    # One maintenance lookup covering the window and every burn window (clipped later).
    longest_burn = int(max(BURN_WINDOWS.values()).total_seconds()) if with_burn else 0
    excluded = maintenance_minutes(devices, min(start_s, end_s - longest_burn), end_s)
    burn_names = list(BURN_WINDOWS) if with_burn else []
    spans = [(start_s, end_s)] + [
        (end_s - int(BURN_WINDOWS[name].total_seconds()), end_s) for name in burn_names
    ]
    # The window and every burn window in a few queries (they share their end).
    counts, *burn_counts = multi_window_counts(ids, spans, excluded=excluded)
    burns: dict[str, dict[int, Counts]] = dict(zip(burn_names, burn_counts, strict=True))
    min_failed = settings.RESMON_SLO_BURN_MIN_FAILED
    items = []
    for device in devices:
        counted_from = max(start_s, device.created_s)
        valid_s = max(0, end_s - counted_from) - _excluded_seconds(
            excluded.get(device.id, ()), counted_from, end_s
        )
        rates = {
            name: burn_rate(
                burns[name].get(device.id),
                device.target,
                BURN_WINDOWS[name],
                min_failed=min_failed,
            )
            for name in burns
        }
        figures = budget_figures(
            counts.get(device.id),
            device.target,
            valid_s=valid_s,
            interval_s=device.interval_s,
            window_s=end_s - start_s,
            current_burn=rates.get("1h"),
        )
        items.append(
            {
                "id": device.id,
                "name": device.name,
                "kind": device.kind,
                "site": device.site,
                **figures,
                "burn_rates": rates,
            }
        )
    items.sort(key=worst_first)
    return Report(window, start_s, end_s, items)


def worst_first(item: dict[str, Any]) -> tuple[int, float, str]:
    remaining = item["budget_remaining_pct"]
    # Not measured sorts after every measured figure, then by name.
    return (remaining is None, remaining if remaining is not None else 0.0, item["name"])


def group_report(
    group: str,
    window: str,
    now: datetime,
    *,
    target: float | None = None,
    latency_threshold_ms: float | None = None,
    latency_target: float | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """One group's figures: all checks of its devices count as one stream."""
    start_s, end_s = window_bounds(window, now)
    devices = load_devices(group=group)
    ids = [d.id for d in devices]
    histogram = latency_threshold_ms is not None
    excluded = maintenance_minutes(devices, start_s, end_s)
    total = Counts()
    for part in window_counts(ids, start_s, end_s, histogram=histogram, excluded=excluded).values():
        total.add(part)
    expected = 0.0
    for device in devices:
        counted_from = max(start_s, device.created_s)
        valid = max(0, end_s - counted_from) - _excluded_seconds(
            excluded.get(device.id, ()), counted_from, end_s
        )
        expected += valid / device.interval_s
    if target is None:
        target = min((d.target for d in devices), default=DEFAULT_TARGET)
    rates = {
        key: value
        for key, value in zip(
            BURN_WINDOWS,
            group_burn_rates(
                group=group, target=target, windows=list(BURN_WINDOWS.values()), now=now
            ).values(),
            strict=True,
        )
    }
    figures = budget_figures(
        total,
        target,
        valid_s=0,
        interval_s=None,
        window_s=end_s - start_s,
        current_burn=rates.get("1h"),
    )
    figures["coverage"] = round(min(1.0, total.checks / expected) * 100, 3) if expected else None
    result: dict[str, Any] = {
        "group": group,
        "name": name or group,
        "devices": len(devices),
        **figures,
        "burn_rates": rates,
    }
    if histogram and latency_threshold_ms is not None:
        result["latency_threshold_ms"] = latency_threshold_ms
        result["latency_target"] = latency_target
        result["latency_sli"] = latency_share(total.histogram, total.checks, latency_threshold_ms)
    return result
