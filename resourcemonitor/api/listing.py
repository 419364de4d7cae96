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
from django.db.models import Field, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
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
# Up to this many changed devices are read by their ids as bound parameters; more, by
# the candidates' subquery again.
_MAX_ID_PARAMS = 500

_PROBLEMS = frozenset(str(status) for status in PROBLEM_STATUSES)
_RANK = {str(status): meta.rank for status, meta in STATUS_META.items()}
# Flapping devices come after the problem statuses and before unknown (rank 3).
_FLAPPING_RANK = 2.5

# Tags are tuples (JSON arrays all the same): an item holding only strings, numbers and
# tuples of strings is one the garbage collector stops tracking, so the cached 10,000
# items do not lengthen every full collection of the web process (~50-70 ms each with
# lists; docs/scaling.md).
_NO_TAGS: tuple[str, ...] = ()

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
    "state__status",
    "state__since",
    "state__last_check_at",
    "state__latency_ms",
    "state__last_error",
    "state__flapping",
)
# Read after those for changes-only lists only (the "changed after since" test): two
# datetime columns fewer in a full list, ~4 ms of its ~30 ms fetch at 10,000 devices.
_CHANGE_COLUMNS = (*_COLUMNS, "updated_at", "state__changed_at")
# Positions in the rows that list_devices() reads before building an item.
_INTERVAL = _COLUMNS.index("check_interval_s")
_STATUS = _COLUMNS.index("state__status")
_LAST_CHECK = _COLUMNS.index("state__last_check_at")
_FLAPPING = _COLUMNS.index("state__flapping")
_ITEM_WIDTH = len(_COLUMNS)
_UPDATED = _CHANGE_COLUMNS.index("updated_at")
_CHANGED = _CHANGE_COLUMNS.index("state__changed_at")


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
    # Every device in the inventory, whatever the filter: changes-only lists carry it
    # (the dashboard compares it with what it holds), full lists leave it out.
    total_devices: int | None = None
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def json(self) -> bytes:
        """The API's answer (``count``, ``now``, [``total_devices``,] ``items``), encoded
        once per listing: a cached full list (:func:`cached_list_devices`) hands every
        client the same bytes instead of encoding 4 MB again (10-20 ms) for each."""
        body = self._json
        if body is None:
            payload: dict[str, Any] = {"count": self.count, "now": isoformat(self.now)}
            if self.total_devices is not None:
                payload["total_devices"] = self.total_devices
            payload["items"] = self.items
            # Two threads may both encode a fresh listing; both get the same bytes.
            body = self._json = encode_json(payload)
        return body


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


def _changed_candidates(since: datetime, now: datetime, using: str) -> tuple[RawSQL, int]:
    """A query for the ids of a superset of the devices that changed after ``since``, and
    the number of devices in the inventory.

    Index-driven rather than a test on every row (issue 5): the candidates come from
    DeviceState alone (``changed_at``, ``last_check_at`` ranges) and the devices edited
    after ``since`` (``updated_at``); the caller then reads only those devices by primary
    key, so a poll costs its changes, not the network. ``changed_at`` and ``updated_at``
    are indexed; ``last_check_at`` deliberately is not: it changes on every check, and the
    index cost the collector's state writes ~20 % (docs/scaling.md), so the database scans
    the narrow state table for it (~1.3 ms at 10,000 devices on SQLite) rather than four
    joined tables (~8 ms).

    Plain SQL (portable: quoted names, %s parameters adapted by the backend as the ORM
    adapts them), because this runs on every poll of every dashboard and the ORM took
    longer to compile these statements than the database took to run them.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value

    def column(model: type[Device] | type[DeviceState], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, Field) and field.column  # a concrete column, not a relation
        return quote(field.column)

    devices = quote(Device._meta.db_table)
    states = quote(DeviceState._meta.db_table)
    interval = column(Device, "check_interval_s")
    # The stale windows in use and the device count in one walk of the interval index.
    windows: set[float] = set()
    total = 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {interval}, COUNT(*) FROM {devices} GROUP BY {interval}")
        for interval_s, count in cursor.fetchall():
            windows.add(stale_after_s(interval_s))
            total += count
    last_check = column(DeviceState, "last_check_at")
    checked = [f"{last_check} > %s"]
    params = [adapt(since)]
    # Going stale is a change nobody writes: the devices whose last check crossed a stale
    # window between ``since`` and ``now``, one narrow range per window (the exact test,
    # with each device's own interval, is _change_test's).
    if len(windows) > _MAX_STALE_WINDOWS:
        ranges = [(max(windows), min(windows))]
    else:
        ranges = [(window, window) for window in sorted(windows)]
    for back, forward in ranges:
        checked.append(f"({last_check} > %s AND {last_check} <= %s)")
        params += [adapt(since - timedelta(seconds=back)), adapt(now - timedelta(seconds=forward))]
    device_id = column(DeviceState, "device")
    # A UNION, not one OR: the state changes and the edited devices come from index seeks
    # that find few or none, and only the ``last_check_at`` tests scan the state table
    # (with ``changed_at`` ORed into that scan it took ~1.9 ms instead of ~1.3 ms).
    sql = (
        f"SELECT {device_id} FROM {states} WHERE {column(DeviceState, 'changed_at')} > %s"
        f" UNION SELECT {device_id} FROM {states} WHERE {' OR '.join(checked)}"
        f" UNION SELECT {column(Device, 'id')} FROM {devices}"
        f" WHERE {column(Device, 'updated_at')} > %s"
    )
    params = [adapt(since - timedelta(seconds=CHANGES_OVERLAP_S)), *params, adapt(since)]
    return RawSQL(sql, params), total


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
    build serves them all, with its JSON encoded once (:meth:`DeviceListing.json`). One
    thread rebuilds an expired answer; the others keep serving the expired one meanwhile,
    if it is less than twice the TTL old, rather than queue behind a build that costs a
    whole request's time (~100 ms at 10,000 devices), and wait for it otherwise (a cold or
    long-unused entry). The answer carries the ``now`` it was built at, so a client's next
    ``changed_since`` starts from there and misses nothing. 1 s by default, 0 turns it
    off; the price is that a client that writes and then reads the full list at once may
    see the older list (built up to twice the TTL ago).
    """
    ttl = settings.RESMON_LIST_CACHE_S
    if ttl <= 0 or device_filter.changed_since is not None:
        return list_devices(device_filter, now=now, limit=limit, offset=offset)
    key = (device_filter, limit, offset, Device.objects.db)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    if not _cache_lock.acquire(blocking=False):  # another thread is building
        if hit is not None and time.monotonic() - hit[0] < 2 * ttl:
            return hit[1]
        _cache_lock.acquire()
    try:
        hit = _cache.get(key)  # built by another thread while this one waited
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
        built = time.monotonic()
        listing = list_devices(device_filter, now=now, limit=limit, offset=offset)
        if len(_cache) > 64:  # many distinct filters: keep memory bounded
            _cache.clear()
        _cache[key] = (built, listing)
        return listing
    finally:
        _cache_lock.release()


def list_devices(
    device_filter: DeviceFilter, *, now: datetime, limit: int | None = None, offset: int = 0
) -> DeviceListing:
    """Matching devices as API items, problems first, then by name; two queries in all
    (with ``changed_since``: two when nothing changed, four otherwise)."""
    qs = device_queryset(device_filter)
    total_devices = None
    if device_filter.changed_since is not None:
        candidates, total_devices = _changed_candidates(device_filter.changed_since, now, qs.db)
        with connections[qs.db].cursor() as cursor:
            cursor.execute(candidates.sql, candidates.params)
            ids = [device_id for (device_id,) in cursor.fetchall()]
        if not ids:
            return DeviceListing(count=0, items=[], now=now, total_devices=total_devices)
        # A short list of ids binds as parameters; a long one (after a collector restart,
        # say) would need thousands, so the database finds them again by the subquery.
        qs = qs.filter(pk__in=ids if len(ids) <= _MAX_ID_PARAMS else candidates)
    statuses = device_filter.statuses
    problems_only = device_filter.problems
    to_datetime, row_now, since = row_clock(
        connections[qs.db].vendor, now, device_filter.changed_since
    )
    changed = None if since is None else _change_test(since, row_now)

    # Sorting by name here is cheaper than ORDER BY (an index walk with a table lookup
    # per row); the stable sort by rank below keeps names in order within each rank.
    rows = fetch_rows(qs.order_by(), _COLUMNS if changed is None else _CHANGE_COLUMNS)
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
    return DeviceListing(count=len(ranked), items=items, now=now, total_devices=total_devices)


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
        stored_status,
        since_at,
        last_check_at,
        latency_ms,
        last_error,
        flapping,
    ) = row[:_ITEM_WIDTH]  # the row itself for a full list (a tuple's whole slice)
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
        if names is not None:
            item["tags"] = tuple(sorted(names)) if len(names) > 1 else (names[0],)
