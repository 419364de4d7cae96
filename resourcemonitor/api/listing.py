"""The device list: one query for the rows, one for the tags, whatever the number of devices.

Shared by ``GET /api/v1/devices`` and the dashboard's server-rendered first paint. Rows
are read with ``values_list()`` and turned into plain dicts: at 10,000 devices, model
instances and per-item pydantic validation would cost more than the query itself.

Status filters, the problems-first order and pagination run in Python, after
:func:`effective_status`, because staleness depends on *now* and on each device's
interval: a stored ``up`` that has not been checked for a while must sort and filter as
``unknown``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet, TextField
from django.db.models.functions import Cast

from resourcemonitor.api.params import isoformat
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.freshness import effective_status, stale_after_s
from resourcemonitor.monitoring.models import DeviceState
from resourcemonitor.monitoring.status import PROBLEM_STATUSES, STATUS_META

# A state change is committed a moment after the collector stamps ``changed_at``; look
# back this far past the client's ``changed_since`` so a late commit is sent twice rather
# than never. Sending a device twice is harmless: the client applies it idempotently.
CHANGES_OVERLAP_S = 5.0
# More distinct stale windows than this and the "went stale since" query uses one range.
_MAX_STALE_WINDOWS = 16

_PROBLEMS = frozenset(str(status) for status in PROBLEM_STATUSES)
_RANK = {str(status): meta.rank for status, meta in STATUS_META.items()}
# Flapping devices come after the problem statuses and before unknown (rank 3).
_FLAPPING_RANK = 2.5

# Shared by every item without tags until _attach_tags() gives each its own list.
_NO_TAGS: list[str] = []

_COLUMNS = (
    "id",
    "name",
    "address",
    "kind",
    "site__name",
    "parent_id",
    "parent__name",
    "enabled",
    "check_method",
    "check_interval_s",
    "updated_at",
    "state__status",
    "state__since",
    "state__last_check_at",
    "state__latency_ms",
    "state__last_error",
    "state__flapping",
    "state__changed_at",
)
# Positions in _COLUMNS that list_devices() reads before building an item.
_INTERVAL = _COLUMNS.index("check_interval_s")
_UPDATED = _COLUMNS.index("updated_at")
_STATUS = _COLUMNS.index("state__status")
_LAST_CHECK = _COLUMNS.index("state__last_check_at")
_FLAPPING = _COLUMNS.index("state__flapping")
_CHANGED = _COLUMNS.index("state__changed_at")


def encode_json(payload: dict[str, Any]) -> bytes:
    """The list's JSON, compact. orjson, not json.dumps: at 10,000 devices (4 MB) the
    standard encoder took 60-120 ms of the request, orjson 10-20 ms (docs/scaling.md).
    Items hold JSON types only (timestamps preformatted), as with ``json.dumps``."""
    return orjson.dumps(payload)


def sort_rank(status: str, flapping: bool) -> float:
    """Problems first in STATUS_META order, then flapping devices, then the rest."""
    rank = _RANK[status]
    if flapping and status not in _PROBLEMS:
        return min(rank, _FLAPPING_RANK)
    return rank


@dataclass(frozen=True)
class DeviceFilter:
    """What a client asked for; every field narrows the list."""

    statuses: frozenset[str] = field(default_factory=frozenset)
    kind: str | None = None
    site: str | None = None
    tag: str | None = None
    search: str | None = None
    problems: bool = False
    changed_since: datetime | None = None


@dataclass
class DeviceListing:
    count: int
    items: list[dict[str, Any]]
    now: datetime


def device_queryset(device_filter: DeviceFilter) -> QuerySet[Device]:
    """The devices matching the filters SQL can apply (all but the effective status)."""
    qs = Device.objects.all()
    if device_filter.kind:
        qs = qs.filter(kind=device_filter.kind)
    if device_filter.site:
        qs = qs.filter(site__name=device_filter.site)
    if device_filter.tag:
        qs = qs.filter(tags__name=device_filter.tag)
    if device_filter.search:
        qs = qs.filter(
            Q(name__icontains=device_filter.search) | Q(address__icontains=device_filter.search)
        )
    # A stale device shows as unknown whatever it stored, so only narrow by the stored
    # status when "unknown" is not wanted; Python drops the stale ones afterwards.
    wanted = set(device_filter.statuses)
    if device_filter.problems:
        wanted = (wanted & _PROBLEMS) if wanted else set(_PROBLEMS)
        if not wanted:
            return qs.none()
    if wanted and "unknown" not in wanted:
        qs = qs.filter(state__status__in=sorted(wanted))
    return qs


def _changed_since_q(since: datetime, now: datetime) -> Q:
    """A superset of the devices that changed after ``since``, for SQL to narrow first.

    Index-driven rather than a test on every row (issue 5): the candidates come from
    DeviceState alone (``changed_at``, ``last_check_at`` ranges) and the devices edited
    after ``since`` (``updated_at``). The main query then reads only those devices by
    primary key, so a poll costs its changes, not the network. ``changed_at`` and
    ``updated_at`` are indexed; ``last_check_at`` deliberately is not: it changes on every
    check, and the index cost the collector's state writes ~20 % (docs/scaling.md), so
    the database scans the narrow state table for it (~1.5 ms at 10,000 devices on
    SQLite) rather than four joined tables (~8 ms).
    """
    # One pass over the devices gives both the stale windows in use and whether any
    # device was edited since: edits are rare, so their own subquery is usually left out.
    windows: set[float] = set()
    edits = False
    for interval, edited in (
        Device.objects.order_by()
        .annotate(edited=ExpressionWrapper(Q(updated_at__gt=since), output_field=BooleanField()))
        .values_list("check_interval_s", "edited")
        .distinct()
    ):
        windows.add(stale_after_s(interval))
        edits = edits or bool(edited)
    state = Q(changed_at__gt=since - timedelta(seconds=CHANGES_OVERLAP_S)) | Q(
        last_check_at__gt=since
    )
    # Going stale is a change nobody writes: the devices whose last check crossed a stale
    # window between ``since`` and ``now``, one narrow range per window (the exact test,
    # with each device's own interval, is _change_test's).
    if len(windows) > _MAX_STALE_WINDOWS:
        state |= Q(
            last_check_at__gt=since - timedelta(seconds=max(windows)),
            last_check_at__lte=now - timedelta(seconds=min(windows)),
        )
    else:
        for window in windows:
            state |= Q(
                last_check_at__gt=since - timedelta(seconds=window),
                last_check_at__lte=now - timedelta(seconds=window),
            )
    # A subquery (a UNION with the edited devices, if any): the database reads the few
    # ids first, then each device by its primary key. (An OR across the two tables would
    # make it scan every device.)
    states = DeviceState.objects.order_by().filter(state).values_list("device_id")
    if not edits:
        return Q(pk__in=states)
    edited = Device.objects.order_by().filter(updated_at__gt=since).values_list("pk")
    return Q(pk__in=states.union(edited))


def _change_test(since: datetime, now: datetime) -> Callable[..., bool]:
    """The exact "changed after ``since``" rule, for the rows the superset query found."""
    overlap_since = since - timedelta(seconds=CHANGES_OVERLAP_S)

    def changed(
        updated_at: datetime,
        changed_at: datetime | None,
        last_check_at: datetime | None,
        interval_s: float,
    ) -> bool:
        if last_check_at is not None and last_check_at > since:
            return True
        if updated_at > since:
            return True
        if changed_at is not None and changed_at > overlap_since:
            return True
        if last_check_at is None:
            return False
        went_stale_at = last_check_at + timedelta(seconds=stale_after_s(interval_s))
        return since < went_stale_at <= now

    return changed


def fetch_rows(qs: QuerySet[Any], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """``qs.values_list(*fields)``, run on a plain cursor.

    Skips Django's per-value converters, which at 10,000 rows cost more than the query:
    the caller gets what the driver returns (on SQLite, booleans as 0/1). Datetime fields
    (named ``*_at`` or ``*since``) come as UTC text on SQLite, where Django's own parsing
    is the slowest part of the list; :func:`db_datetime` and :func:`db_isoformat` read both.
    """
    connection = connections[qs.db]
    if connection.vendor == "sqlite":
        # A CAST has no declared type, so the driver's datetime converter leaves it alone.
        casts = {
            f"_text_{index}": Cast(name, TextField())
            for index, name in enumerate(fields)
            if name.endswith(("_at", "since"))
        }
        qs = qs.annotate(**casts)
        fields = tuple(
            f"_text_{index}" if f"_text_{index}" in casts else name
            for index, name in enumerate(fields)
        )
    try:
        sql, params = qs.values_list(*fields).query.sql_with_params()
    except EmptyResultSet:  # qs.none(), or an empty __in list
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def db_datetime(value: datetime | str | None) -> datetime | None:
    """A datetime column's raw value as an aware UTC datetime."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _naive_utc(value: datetime | str | None) -> datetime | None:
    """SQLite's UTC text as a naive datetime: half the cost of an aware one, and 10,000
    rows a request. Only compared with other naive UTC values (see row_clock)."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if parsed.tzinfo is not None:  # text written by something other than Django
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def row_clock(
    vendor: str, now: datetime, since: datetime | None
) -> tuple[Callable[[Any], datetime | None], datetime, datetime | None]:
    """How to read the rows' datetimes, and ``now``/``since`` in the same form."""
    if vendor == "sqlite":
        naive_since = None if since is None else since.astimezone(UTC).replace(tzinfo=None)
        return _naive_utc, now.astimezone(UTC).replace(tzinfo=None), naive_since
    return db_datetime, now, since


def db_isoformat(value: datetime | str | None) -> str | None:
    """A datetime column's raw value as the API's ISO 8601 text, without parsing when
    SQLite's own format ("YYYY-MM-DD HH:MM:SS[.ffffff]", UTC) can simply be reshaped."""
    if isinstance(value, str) and value[10:11] == " ":
        if len(value) == 26:
            return f"{value[:10]}T{value[11:23]}Z"
        if len(value) == 19:
            return f"{value[:10]}T{value[11:]}.000Z"
    return isoformat(db_datetime(value))


# (filter, limit, offset, database) -> (monotonic time built, listing)
_cache: dict[tuple[Any, ...], tuple[float, DeviceListing]] = {}
_cache_lock = threading.Lock()


def cached_list_devices(
    device_filter: DeviceFilter, *, now: datetime, limit: int | None = None, offset: int = 0
) -> DeviceListing:
    """:func:`list_devices`, reusing an answer built less than ``RESMON_LIST_CACHE_S`` ago.

    Only for full lists (no ``changed_since``, whose answers differ per client). Several
    dashboards polling 10,000 devices ask for the same list within the same second; one
    build serves them all (the lock makes concurrent misses wait for one build, not run
    ten). The answer carries the ``now`` it was built at, so a client's next
    ``changed_since`` starts from there and misses nothing. Off (0) by default: a client
    that writes and then reads at once would see the older list for up to the TTL.
    """
    ttl = settings.RESMON_LIST_CACHE_S
    if ttl <= 0 or device_filter.changed_since is not None:
        return list_devices(device_filter, now=now, limit=limit, offset=offset)
    key = (device_filter, limit, offset, Device.objects.db)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    with _cache_lock:
        hit = _cache.get(key)  # built by another thread while this one waited
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
        built = time.monotonic()
        listing = list_devices(device_filter, now=now, limit=limit, offset=offset)
        if len(_cache) > 64:  # many distinct filters: keep memory bounded
            _cache.clear()
        _cache[key] = (built, listing)
        return listing


def list_devices(
    device_filter: DeviceFilter, *, now: datetime, limit: int | None = None, offset: int = 0
) -> DeviceListing:
    """Matching devices as API items, problems first, then by name; two queries in all
    (three with ``changed_since``)."""
    qs = device_queryset(device_filter)
    if device_filter.changed_since is not None:
        qs = qs.filter(_changed_since_q(device_filter.changed_since, now))
    statuses = device_filter.statuses
    problems_only = device_filter.problems
    to_datetime, row_now, since = row_clock(
        connections[qs.db].vendor, now, device_filter.changed_since
    )
    changed = None if since is None else _change_test(since, row_now)

    # Sorting by name here is cheaper than ORDER BY (an index walk with a table lookup
    # per row); the stable sort by rank below keeps names in order within each rank.
    rows = fetch_rows(qs.order_by(), _COLUMNS)
    rows.sort(key=itemgetter(1))
    # First decide which rows match and where they sort; build dicts for one page only.
    ranked: list[tuple[float, str, bool, tuple[Any, ...]]] = []
    for row in rows:
        last_check_at = to_datetime(row[_LAST_CHECK])
        status, stale = effective_status(row[_STATUS], last_check_at, row[_INTERVAL], row_now)
        if statuses and status not in statuses:
            continue
        if problems_only and status not in _PROBLEMS:
            continue
        if changed is not None and not changed(
            to_datetime(row[_UPDATED]), to_datetime(row[_CHANGED]), last_check_at, row[_INTERVAL]
        ):
            continue
        ranked.append((sort_rank(status, bool(row[_FLAPPING])), status, stale, row))
    ranked.sort(key=itemgetter(0))
    end = None if limit is None else offset + limit
    items = [_item(row, status, stale) for _, status, stale, row in ranked[offset:end]]
    _attach_tags(items, qs)
    return DeviceListing(count=len(ranked), items=items, now=now)


def _item(row: tuple[Any, ...], status: str, stale: bool) -> dict[str, Any]:
    (
        device_id,
        name,
        address,
        kind,
        site,
        parent_id,
        parent_name,
        enabled,
        check_method,
        interval_s,
        _updated_at,
        stored_status,
        since_at,
        last_check_at,
        latency_ms,
        last_error,
        flapping,
        _changed_at,
    ) = row
    return {
        "id": device_id,
        "name": name,
        "address": address,
        "kind": kind,
        "site": site,
        "tags": _NO_TAGS,
        "parent_id": parent_id,
        "parent_name": parent_name,
        "status": status,
        "stale": stale,
        "last_known_status": stored_status,
        "since": db_isoformat(since_at),
        "last_check_at": db_isoformat(last_check_at),
        # Microsecond resolution is all a probe measures, and short numbers keep a
        # 10,000-device answer small.
        "latency_ms": None if latency_ms is None else round(latency_ms, 3),
        "last_error": last_error or None,
        "flapping": bool(flapping),
        "check_method": check_method,
        "check_interval_s": interval_s,
        "enabled": bool(enabled),
    }


def _attach_tags(items: list[dict[str, Any]], qs: QuerySet[Device]) -> None:
    if not items:
        return
    through = Device.tags.through.objects
    if len(items) <= 500:
        rows = through.filter(device_id__in=[item["id"] for item in items])
    else:
        # A subquery rather than thousands of bound parameters.
        rows = through.filter(device_id__in=qs.values("pk"))
    tags: dict[int, list[str]] = defaultdict(list)
    for device_id, tag_name in fetch_rows(rows.order_by(), ("device_id", "tag__name")):
        tags[device_id].append(tag_name)
    for item in items:
        names = tags.get(item["id"])
        if names is None:
            item["tags"] = []
        else:
            if len(names) > 1:
                names.sort()
            item["tags"] = names
