"""The write path (samples, rollups, device states, events), sample partitions, raw reads.

Everything the collector writes goes through ``write_batch``: one transaction per batch.

- Samples are inserted with "insert or ignore" on the ``(t, device_id)`` key and the
  statement returns the rows it really inserted. Rollups are built from those rows only
  (``rollups.aggregate_minutes``), so writing the same batch twice (a retry after an
  unclear failure, a spool replay) neither doubles a sample nor counts it twice in a
  rollup.
- Rollup rows (minute, hour and day; see rollups.py) are merged into the stored ones by
  upsert. A minute's hour row is always written with it, in one transaction.
- The collector's writer passes a ``rollups.RollupBuffer``: each (device, minute) is
  upserted once, when its minute closes, and each (device, day) once, when its day
  closes (``flush_rollups``); ``recover_rollups`` rebuilds what a killed writer held from
  the raw samples and the hour rows; ``backfill_day_rollups`` builds the day
  tier once on a database that predates it. Without a buffer (push ingest) every sample
  is upserted at once.
- Device states are upserted in bulk (one ``executemany``), the last state of each device
  in the batch wins. Events are inserted in bulk.
- Rows for devices deleted meanwhile are dropped (they would break the foreign keys and
  poison the batch forever). Samples, and on PostgreSQL rollups, have no database foreign
  key (its check per row cost a fifth of the write path); the states' key catches a
  deleted device, and a few rollup rows written for one just after it went are never read.

SQL differs per database in a few words only; ``_backend()`` is the one vendor switch.
On SQLite samples go in with multi-row ``INSERT OR IGNORE ... RETURNING``. On PostgreSQL
they are COPYed into a session temp table, then moved with one ``INSERT ... SELECT ... ON
CONFLICT DO NOTHING RETURNING`` (COPY alone cannot skip duplicates): the same idempotence
at COPY speed. PostgreSQL's ``monitoring_sample`` is range-partitioned by UTC day
(migration 0005); ``ensure_partitions`` creates a day's partition the first time a batch
needs it, and retention drops whole partitions (``drop_sample_partitions_before``).
Both paths run in the test suite (``make test`` runs it a second time on PostgreSQL).

Reads of raw samples (``samples_for_device``) and their pruning (``prune_samples``) are
here too; reads of rollups are in rollups.py.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from resourcemonitor.monitoring.models import HISTOGRAM_COLUMNS
from resourcemonitor.monitoring.rollups import (
    ADDITIVE_INDEXES,
    DAY_S,
    HOUR_S,
    ROLLUP_VALUE_COLUMNS,
    FlushPlan,
    RollupBuffer,
    RollupKey,
    aggregate_minutes,
    with_coarser_tiers,
)

if TYPE_CHECKING:  # the state machine stays free of storage; only the type is needed here
    from resourcemonitor.monitoring.collector.state import TrackedState

# How far back the start-up repair (recover_rollups) compares raw samples with rollups.
RECOVERY_LOOKBACK_S = 3600
# Rows per multi-row INSERT: 5 parameters each stays far below SQLite's 32766 limit.
_SAMPLE_ROWS_PER_STATEMENT = 500
_IDS_PER_QUERY = 500
DAY_MS = 86_400_000
_T = TypeVar("_T")
_PARTITION_RE = re.compile(r"^monitoring_sample_p(\d{8})$")
# Days whose partition this process knows exists, per database name (a cache: creating
# one is idempotent, so a stale entry only costs the CREATE ... IF NOT EXISTS).
_known_partitions: dict[str, set[int]] = {}


# -- what a batch holds ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One ``monitoring_sample`` row: ``t`` in ms since the epoch, latency in µs."""

    t: int
    device_id: int
    ok: bool
    latency_us: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class StateRow:
    """A full ``DeviceState`` row (an upsert replaces every column)."""

    device_id: int
    status: str
    since: datetime
    last_check_at: datetime | None
    last_ok_at: datetime | None
    latency_ms: float | None
    consecutive_failures: int
    consecutive_successes: int
    last_error: str
    flapping: bool
    changed_at: datetime
    # The last checks' outcomes for flap detection, oldest first, one digit each
    # (collector.state.Outcome): kept so a restart, or the next push batch, goes on
    # weighing the same history. Last, with a default: spool files written before it
    # decode unchanged.
    flap_history: str = ""

    @classmethod
    def of(cls, device_id: int, state: TrackedState) -> StateRow:
        """The row for a device's in-memory state (the collector's and the ingest path's)."""
        return cls(
            device_id=device_id,
            status=state.status,
            since=state.since,
            last_check_at=state.last_check_at,
            last_ok_at=state.last_ok_at,
            latency_ms=state.latency_ms,
            consecutive_failures=state.consecutive_failures,
            consecutive_successes=state.consecutive_successes,
            last_error=state.last_error,
            flapping=state.flapping,
            changed_at=state.changed_at,
            flap_history=state.history_text(),
        )


# The DeviceState columns, in StateRow's order: the upsert here, and the reads that
# rebuild a device's tracked state (collector inventory, push ingest), use this one list.
STATE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StateRow))


@dataclass(frozen=True, slots=True)
class EventRow:
    device_id: int
    at: datetime
    from_status: str
    to_status: str
    message: str


@dataclass(slots=True)
class Batch:
    """What one transaction writes. ``states`` keeps only the newest row per device."""

    samples: list[SampleRow] = field(default_factory=list)
    states: dict[int, StateRow] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)

    def add(
        self, sample: SampleRow | None, state: StateRow | None, events: Sequence[EventRow] = ()
    ) -> None:
        if sample is not None:
            self.samples.append(sample)
        if state is not None:
            self.states[state.device_id] = state
        if events:
            self.events.extend(events)

    def __len__(self) -> int:
        return len(self.samples) + len(self.states) + len(self.events)

    def device_ids(self) -> set[int]:
        ids = {s.device_id for s in self.samples}
        ids.update(self.states)
        ids.update(e.device_id for e in self.events)
        return ids


@dataclass(frozen=True, slots=True)
class WriteReport:
    samples_inserted: int
    samples_ignored: int
    rollup_rows: int
    states: int
    events: int
    dropped_rows: int


# -- SQL per database: the one vendor switch -------------------------------------------

_ROLLUP_COLUMNS = ("device_id", "resolution", "bucket", *ROLLUP_VALUE_COLUMNS)
_ROLLUP_NAMES = ", ".join(f'"{c}"' for c in _ROLLUP_COLUMNS)
_ROLLUP_IN = "resmon_monitoring_rollup_in"  # the session's temp table for rollup upserts


def _sqlite_datetime(value: datetime | None) -> str | None:
    """What Django stores for an aware datetime on SQLite, without its per-call overhead.

    Django (USE_TZ) writes naive UTC text, ``str(value)``: "2026-01-01 00:00:00.123456".
    This is the hot path's version (four datetimes per device state).
    """
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _as_is(value: datetime | None) -> datetime | None:
    return value


@dataclass(frozen=True)
class _Backend:
    vendor: str
    placeholder: str
    insert_samples: str  # one row's template is appended (and repeated) by _insert_samples
    returning: str
    least: str
    greatest: str
    adapt_datetime: Callable[[datetime | None], Any]

    def rollup_upsert(self, source: str | None = None) -> str:
        """The upsert of one row of parameters, or of every row of table ``source``."""
        p = self.placeholder
        columns = ", ".join(f'"{c}"' for c in _ROLLUP_COLUMNS)
        values = ", ".join([p] * len(_ROLLUP_COLUMNS))
        add = ["count", "ok_count", "latency_count", "latency_sum_ms", *HISTOGRAM_COLUMNS]
        sets = [f'"{c}" = monitoring_rollup."{c}" + excluded."{c}"' for c in add]
        # Either side may be NULL (no latency yet); COALESCE keeps the other one.
        for column, pick in (("latency_min_ms", self.least), ("latency_max_ms", self.greatest)):
            old, new = f'monitoring_rollup."{column}"', f'excluded."{column}"'
            sets.append(f'"{column}" = {pick}(COALESCE({old}, {new}), COALESCE({new}, {old}))')
        rows = f"SELECT {columns} FROM {source}" if source else f"VALUES ({values})"
        return (
            f"INSERT INTO monitoring_rollup ({columns}) {rows} "
            f"ON CONFLICT (device_id, resolution, bucket) DO UPDATE SET {', '.join(sets)}"
        )

    def state_upsert(self, source: str | None = None) -> str:
        columns = ", ".join(STATE_COLUMNS)
        values = ", ".join([self.placeholder] * len(STATE_COLUMNS))
        sets = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[1:])
        rows = f"SELECT {columns} FROM {source}" if source else f"VALUES ({values})"
        return (
            f"INSERT INTO monitoring_devicestate ({columns}) {rows} "
            f"ON CONFLICT (device_id) DO UPDATE SET {sets}"
        )

    def event_insert(self) -> str:
        values = ", ".join([self.placeholder] * 5)
        return (
            "INSERT INTO monitoring_event (device_id, at, from_status, to_status, message) "
            f"VALUES ({values})"
        )


_SQLITE = _Backend(
    vendor="sqlite",
    placeholder="?",
    insert_samples=(
        "INSERT OR IGNORE INTO monitoring_sample (t, device_id, ok, latency_us, error) VALUES "
    ),
    returning=" RETURNING t, device_id, ok, latency_us",
    least="min",
    greatest="max",
    adapt_datetime=_sqlite_datetime,
)
_POSTGRESQL = _Backend(
    vendor="postgresql",
    placeholder="%s",
    insert_samples="INSERT INTO monitoring_sample (t, device_id, ok, latency_us, error) VALUES ",
    returning=" ON CONFLICT DO NOTHING RETURNING t, device_id, ok, latency_us",
    least="LEAST",
    greatest="GREATEST",
    adapt_datetime=_as_is,  # psycopg adapts aware datetimes itself
)


def _backend(connection: BaseDatabaseWrapper) -> _Backend:
    if connection.vendor == "sqlite":
        return _SQLITE
    if connection.vendor == "postgresql":
        return _POSTGRESQL
    raise NotImplementedError(f"no bulk sample path for the {connection.vendor} database")


def _raw_cursor(connection: BaseDatabaseWrapper) -> Any:
    # The DB-API cursor, not Django's wrapper: no placeholder rewriting or debug logging
    # of thousands of parameters per statement on the hot path.
    connection.ensure_connection()
    return connection.connection.cursor()


# -- write -----------------------------------------------------------------------------


def _existing_device_ids(cursor: Any, backend: _Backend, ids: Iterable[int]) -> set[int]:
    wanted = sorted(ids)
    found: set[int] = set()
    if backend.vendor == "postgresql" and wanted:
        # One array parameter instead of IN lists of 500. The cast matters: psycopg sends
        # small ints as smallint[], and id = ANY(smallint[]) is a sequential scan.
        cursor.execute("SELECT id FROM inventory_device WHERE id = ANY(%s::bigint[])", [wanted])
        return {row[0] for row in cursor.fetchall()}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        marks = ", ".join([backend.placeholder] * len(chunk))
        cursor.execute(f"SELECT id FROM inventory_device WHERE id IN ({marks})", chunk)
        found.update(row[0] for row in cursor.fetchall())
    return found


def _rows_of_existing_devices(
    cursor: Any,
    backend: _Backend,
    rows: dict[RollupKey, list[Any]],
    known: Iterable[int] = (),
) -> dict[RollupKey, list[Any]]:
    """``rows`` without those of devices deleted meanwhile (``known``: ids already checked).

    A writer's buffer can hold a device's closed minute after the device is gone; on
    SQLite the rollup foreign key would fail the batch that writes it, and every retry.
    """
    others = {key[0] for key in rows}.difference(known)
    if not others:
        return rows
    gone = others - _existing_device_ids(cursor, backend, others)
    return {key: agg for key, agg in rows.items() if key[0] not in gone} if gone else rows


def partition_name(day: int) -> str:
    """``monitoring_sample_pYYYYMMDD`` for day number ``day`` (days since the epoch, UTC)."""
    return "monitoring_sample_p" + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")


def _database_key(connection: BaseDatabaseWrapper) -> str:
    return str(connection.settings_dict["NAME"])


def ensure_partitions(
    days: Iterable[int], *, using: str = DEFAULT_DB_ALIAS, cursor: Any = None
) -> int:
    """Create the PostgreSQL partitions of ``days`` (epoch day numbers) that are missing.

    Returns how many days were not known to exist. No-op on SQLite. Several collectors
    may race for a new day: a transaction-scoped advisory lock serialises the creation.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    known = _known_partitions.setdefault(_database_key(connection), set())
    missing = sorted(set(days) - known)
    if not missing:
        return 0
    own_cursor = cursor is None
    with transaction.atomic(using=using):
        if own_cursor:
            cursor = _raw_cursor(connection)
        try:
            cursor.execute("SELECT pg_advisory_xact_lock(7263001)")
            for day in missing:
                _create_partition(cursor, day)
        finally:
            if own_cursor:
                cursor.close()
    # Only after the commit: a rolled-back creation must be retried next time.
    transaction.on_commit(lambda: known.update(missing), using=using)
    return len(missing)


def _create_partition(cursor: Any, day: int) -> None:
    """Create one day's partition, moving in any rows the DEFAULT partition caught."""
    name, start = partition_name(day), day * DAY_MS
    cursor.execute("SELECT to_regclass(%s)", [name])
    if cursor.fetchone()[0] is not None:
        return
    # Created apart, filled from the default partition, then attached: attaching a range
    # the default partition still holds rows of would fail.
    cursor.execute(f"CREATE TABLE {name} (LIKE monitoring_sample INCLUDING ALL)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM monitoring_sample_default WHERE t >= %s AND t < %s "
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        [start, start + DAY_MS],
    )
    cursor.execute(
        f"ALTER TABLE monitoring_sample ATTACH PARTITION {name} "
        f"FOR VALUES FROM ({start}) TO ({start + DAY_MS})"
    )


def sample_partitions(*, using: str = DEFAULT_DB_ALIAS) -> list[tuple[str, int]]:
    """``(name, day)`` of every daily sample partition, oldest first ([] on SQLite)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'monitoring_sample'::regclass"
        )
        names = [row[0] for row in cursor.fetchall()]
    result = []
    for name in names:
        match = _PARTITION_RE.match(name)
        if match:
            day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
            result.append((name, int(day.timestamp()) // 86_400))
    return sorted(result, key=lambda item: item[1])


def drop_sample_partitions_before(before_ms: int, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Drop the partitions wholly older than ``before_ms``; returns the rows they held."""
    connection = connections[using]
    dropped_rows = 0
    known = _known_partitions.setdefault(_database_key(connection), set())
    for name, day in sample_partitions(using=using):
        if (day + 1) * DAY_MS > before_ms:
            break
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {name}")
            dropped_rows += cursor.fetchone()[0]
            cursor.execute(f"DROP TABLE {name}")
        known.discard(day)
    return dropped_rows


def _copy_samples(
    cursor: Any, samples: Sequence[SampleRow]
) -> list[tuple[int, int, Any, int | None]]:
    """PostgreSQL: COPY into a temp table, then one idempotent INSERT ... SELECT."""
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS resmon_sample_in (t bigint, device_id bigint, "
        "ok boolean, latency_us integer, error varchar(100)) ON COMMIT DELETE ROWS"
    )
    with cursor.copy(
        "COPY resmon_sample_in (t, device_id, ok, latency_us, error) FROM STDIN"
    ) as copy:
        copy.write(_copy_text(samples))
    cursor.execute(
        "INSERT INTO monitoring_sample (t, device_id, ok, latency_us, error) "
        "SELECT t, device_id, ok, latency_us, error FROM resmon_sample_in "
        "ON CONFLICT DO NOTHING RETURNING t, device_id, ok, latency_us"
    )
    inserted = cursor.fetchall()
    cursor.execute("TRUNCATE resmon_sample_in")
    return inserted


# COPY's text format: these characters in a value must be written as escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def _copy_text(samples: Sequence[SampleRow]) -> str:
    """Samples as COPY text rows: one string, ~3x cheaper than ``write_row`` per row."""
    null = _COPY_NULL
    escapes = _COPY_ESCAPES
    return "".join(
        [
            f"{s.t}\t{s.device_id}\t{'t' if s.ok else 'f'}\t"
            f"{null if s.latency_us is None else s.latency_us}\t"
            f"{null if s.error is None else s.error.translate(escapes)}\n"
            for s in samples
        ]
    )


# PostgreSQL's timestamps count microseconds from 2000-01-01 UTC. A datetime goes into COPY
# text as that count (~0.2 µs) rather than ISO 8601 (``isoformat``, ~0.75 µs): four a state
# row made ISO text most of the state write's client time (py-spy).
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STATE_TIMES = frozenset({"since", "last_check_at", "last_ok_at", "changed_at"})
_STATE_IN = "resmon_devicestate_in"


def _state_copy_text(states: Sequence[StateRow]) -> str:
    """Device states as COPY text rows for ``_STATE_IN``, in ``STATE_COLUMNS`` order, the
    (aware) datetimes as microseconds since ``_PG_EPOCH``.

    ~4x cheaper than ``write_row``, which adapts twelve values a row in Python: the
    collector writes a state with every check, so this is on its hot path too.
    """
    null = _COPY_NULL
    escapes = _COPY_ESCAPES
    epoch, us = _PG_EPOCH, _MICROSECOND
    return "".join(
        [
            f"{s.device_id}\t{s.status.translate(escapes)}\t{(s.since - epoch) // us}\t"
            f"{null if s.last_check_at is None else (s.last_check_at - epoch) // us}\t"
            f"{null if s.last_ok_at is None else (s.last_ok_at - epoch) // us}\t"
            f"{null if s.latency_ms is None else repr(float(s.latency_ms))}\t"
            f"{s.consecutive_failures}\t{s.consecutive_successes}\t"
            f"{s.last_error.translate(escapes)}\t{'t' if s.flapping else 'f'}\t"
            f"{(s.changed_at - epoch) // us}\t{s.flap_history.translate(escapes)}\n"
            for s in states
        ]
    )


_STATE_UPSERT = _POSTGRESQL.state_upsert(
    "(SELECT "
    + ", ".join(
        f"TIMESTAMPTZ '2000-01-01 00:00:00+00' + {c} * INTERVAL '1 microsecond' AS {c}"
        if c in _STATE_TIMES
        else c
        for c in STATE_COLUMNS
    )
    + f" FROM {_STATE_IN}) AS fresh"
)


def _upsert_states_copy(cursor: Any, states: Sequence[StateRow]) -> None:
    """PostgreSQL: the states through a temp table of their own (datetimes as microsecond
    counts), upserted by one statement that turns the counts back into timestamps
    (exactly: a count times one microsecond is computed in double precision, exact below
    2**53 µs)."""
    _copy_upsert(
        cursor,
        _STATE_IN,
        f"CREATE TEMP TABLE IF NOT EXISTS {_STATE_IN} (device_id bigint, status text, "
        "since bigint, last_check_at bigint, last_ok_at bigint, latency_ms double precision, "
        "consecutive_failures integer, consecutive_successes integer, last_error text, "
        "flapping boolean, changed_at bigint, flap_history text) ON COMMIT DELETE ROWS",
        _state_copy_text(states),
        _STATE_UPSERT,
    )


def _copy_upsert(
    cursor: Any, temp: str, create: str, data: str | tuple[str, bytes | str], upsert: str
) -> None:
    """PostgreSQL: COPY ``data`` (COPY text, or a format option and its data) into the
    session's temp table ``temp`` (``create`` makes it the first time), then ``upsert``
    from it, then empty it.

    One statement instead of one per row: executemany of an upsert costs ~0.2 ms a row
    even pipelined; this is ~20x faster. Rows must have unique keys (they do: rollups are
    pre-aggregated per key, states are one per device).
    """
    cursor.execute(create)
    options, payload = ("", data) if isinstance(data, str) else data
    with cursor.copy(f"COPY {temp} FROM STDIN{options}") as copy:
        copy.write(payload)
    cursor.execute(upsert)
    cursor.execute(f"TRUNCATE {temp}")


def _insert_samples(
    cursor: Any, backend: _Backend, samples: Sequence[SampleRow]
) -> list[tuple[int, int, Any, int | None]]:
    """Insert, skipping keys already stored; return the rows actually inserted."""
    if not samples:
        return []
    if backend.vendor == "postgresql":
        return _copy_samples(cursor, samples)
    inserted: list[tuple[int, int, Any, int | None]] = []
    row_marks = "(" + ", ".join([backend.placeholder] * 5) + ")"
    for start in range(0, len(samples), _SAMPLE_ROWS_PER_STATEMENT):
        chunk = samples[start : start + _SAMPLE_ROWS_PER_STATEMENT]
        sql = backend.insert_samples + ", ".join([row_marks] * len(chunk)) + backend.returning
        params: list[Any] = []
        for s in chunk:
            params.extend((s.t, s.device_id, s.ok, s.latency_us, s.error))
        cursor.execute(sql, params)
        inserted.extend(cursor.fetchall())
    return inserted


def _rollup_copy_text(rows: dict[RollupKey, list[Any]]) -> str:
    """Rollup rows as COPY text (numbers and NULLs only): ~3x cheaper than ``write_row``."""
    if not rows:
        return ""
    text = "\n".join(["\t".join(map(str, (*key, *agg))) for key, agg in rows.items()])
    # No number's text holds "None": NULLs (min/max without latency) are the only ones.
    return text.replace("None", _COPY_NULL) + "\n"


# COPY's binary format: a signature, flags and header extension length, the tuples (a
# field count, then each field's length and big-endian bytes; length -1 is NULL), -1.
_COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_BINARY_TRAILER = struct.pack(">h", -1)
# A rollup row's fields, in _ROLLUP_COLUMNS order: bigint, integer, bigint, three
# integers, three doubles (min and max may be NULL), sixteen integers.
_ROLLUP_FIELD_CODES = "qiqiiiddd" + "i" * len(HISTOGRAM_COLUMNS)


@dataclass(frozen=True, slots=True)
class _BinaryLayout:
    """How rollup rows with one pattern of NULLs are laid out as COPY binary tuples."""

    pack: Callable[..., bytes]  # the row's non-NULL values, back to back
    width: int  # bytes of one row so packed
    template: bytes  # one tuple: field count and lengths set, values zero
    moves: tuple[tuple[int, int], ...]  # (offset in the tuple, offset in the packed row)


def _binary_layout(null_min: bool, null_max: bool) -> _BinaryLayout:
    codes: list[str | None] = list(_ROLLUP_FIELD_CODES)
    codes[7] = None if null_min else codes[7]
    codes[8] = None if null_max else codes[8]
    values = struct.Struct(">" + "".join(code for code in codes if code))
    template = bytearray(struct.pack(">h", len(codes)))
    moves: list[tuple[int, int]] = []
    offset = 0
    for code in codes:
        if code is None:
            template += struct.pack(">i", -1)
            continue
        size = struct.calcsize(">" + code)
        template += struct.pack(">i", size)
        moves.extend((len(template) + byte, offset + byte) for byte in range(size))
        template += bytes(size)
        offset += size
    return _BinaryLayout(values.pack, values.size, bytes(template), tuple(moves))


_BINARY_LAYOUTS = {
    (null_min, null_max): _binary_layout(null_min, null_max)
    for null_min in (False, True)
    for null_max in (False, True)
}


def _rollup_copy_binary(rows: dict[RollupKey, list[Any]]) -> bytes | None:
    """Rollup rows as COPY binary data; None when some value does not fit its column's
    binary type (a caller then sends text).

    Text costs ~3 µs a row, most of it ``str`` of 25 numbers; this ~0.8 µs. Every row's
    values are packed by one C call, back to back, and then moved into place in tuples
    that already carry the field count and lengths: one strided slice copy per byte
    position of a row (~120), each over all rows at once.
    """
    groups: dict[tuple[bool, bool], list[bytes]] = {}
    try:
        for key, agg in rows.items():
            nulls = (agg[4] is None, agg[5] is None)
            layout = _BINARY_LAYOUTS[nulls]
            values = (
                (*key, *agg)
                if nulls == (False, False)
                else (*key, *(value for value in agg if value is not None))
            )
            groups.setdefault(nulls, []).append(layout.pack(*values))
    except struct.error:  # a numeric sum (Decimal), a count past 2**31: not for binary
        return None
    out = [_COPY_BINARY_HEADER]
    for nulls, packed in groups.items():
        layout = _BINARY_LAYOUTS[nulls]
        data = b"".join(packed)
        tuples = bytearray(layout.template * len(packed))
        step = len(layout.template)
        for to, frm in layout.moves:
            tuples[to::step] = data[frm :: layout.width]
        out.append(bytes(tuples))
    out.append(_COPY_BINARY_TRAILER)
    return b"".join(out)


def _rollup_copy_data(rows: dict[RollupKey, list[Any]]) -> tuple[str, bytes | str]:
    """COPY's format option and data for rollup rows: binary, or text when binary cannot
    carry them."""
    binary = _rollup_copy_binary(rows)
    if binary is None:
        return "", _rollup_copy_text(rows)
    return " (FORMAT BINARY)", binary


def _upsert_rollups(
    cursor: Any,
    backend: _Backend,
    rows: dict[RollupKey, list[Any]],
    data: tuple[str, bytes | str] | None = None,
) -> None:
    """Merge ``rows`` into the stored rollups (PostgreSQL: ``data`` is their COPY data
    when the caller has it ready)."""
    if not rows:
        return
    if backend.vendor == "postgresql":
        _copy_upsert(
            cursor,
            _ROLLUP_IN,
            f"CREATE TEMP TABLE IF NOT EXISTS {_ROLLUP_IN} ON COMMIT DELETE ROWS AS "
            f"SELECT {_ROLLUP_NAMES} FROM monitoring_rollup WITH NO DATA",
            data or _rollup_copy_data(rows),
            backend.rollup_upsert(_ROLLUP_IN),
        )
    else:
        cursor.executemany(backend.rollup_upsert(), [(*key, *agg) for key, agg in rows.items()])


def _write_rollups_fast(cursor: Any, backend: _Backend, rows: dict[RollupKey, list[Any]]) -> int:
    """PostgreSQL, inside ``_try_fast``'s attempt: the minute rows COPYed straight in, the
    hour and day rows upserted.

    A minute row is written once, when its minute closes, so it is almost always new; when
    it is not (a late sample for a minute already written, a device that moved between
    collectors mid-minute) the COPY fails with a unique violation and the caller falls
    back to upserting everything. Returns the rows written.
    """
    minutes = {key: agg for key, agg in rows.items() if key[1] == 60}
    coarser = {key: agg for key, agg in rows.items() if key[1] != 60}
    coarser_data = None
    if minutes:
        options, data = _rollup_copy_data(minutes)
        with cursor.copy(f"COPY monitoring_rollup ({_ROLLUP_NAMES}) FROM STDIN{options}") as copy:
            copy.write(data)
            # Sent: the hour rows are packed while the server inserts the minutes.
            coarser_data = _rollup_copy_data(coarser) if coarser else None
    _upsert_rollups(cursor, backend, coarser, coarser_data)
    return len(rows)


def write_batch(
    batch: Batch, *, using: str = DEFAULT_DB_ALIAS, rollups: RollupBuffer | None = None
) -> WriteReport:
    """Write one batch in one transaction. Safe to call again with the same batch.

    Without ``rollups`` every inserted sample is folded into its minute, hour and day rows
    in this transaction. With a ``RollupBuffer`` (the collector's writer), samples of
    still-open minutes go to the buffer instead, and the buckets whose minute has closed
    are upserted here; the buffer changes only once this transaction has committed, so it
    must not run inside an outer transaction.

    On PostgreSQL the batch is first tried the fast way (``_write_fast``): samples COPYed
    straight into their partition, no device check. A key already stored or a device
    deleted meanwhile makes that attempt fail as a whole (a unique or foreign-key
    violation); it is rolled back and the batch written the careful way, as on SQLite.
    """
    connection = connections[using]
    backend = _backend(connection)
    written: _Written | None = None
    if backend.vendor == "postgresql" and batch.samples:
        written = _write_fast(connection, backend, batch, rollups, using)
    if written is None:
        with transaction.atomic(using=using):
            cursor = _raw_cursor(connection)
            try:
                written = _write_careful(cursor, backend, batch, rollups, using)
            finally:
                cursor.close()
    if rollups is not None and written.plan is not None:
        rollups._commit(written.plan)
    return written.report


@dataclass(slots=True)
class _Written:
    report: WriteReport
    plan: FlushPlan | None


def _try_fast(connection: BaseDatabaseWrapper, using: str, write: Callable[[Any], _T]) -> _T | None:
    """``write(cursor)`` as a transaction of its own; None (and nothing of it left) when it
    hit a unique or foreign-key violation.

    At the top level the attempt is the whole transaction: the deferred foreign keys are
    checked by its COMMIT, and a violation rolls it all back. Inside an outer transaction
    it is a savepoint instead, with the constraints checked at once (releasing a savepoint
    checks nothing). The savepoint costs two round trips and a subtransaction per batch,
    a fifth of the sample COPY's time, so the writer's batches do without it.
    """
    nested = connection.in_atomic_block
    cursor = _raw_cursor(connection)
    # The DB-API cursor raises the driver's exceptions, not Django's.
    failed = (IntegrityError, cursor.connection.IntegrityError)
    try:
        with transaction.atomic(using=using):
            if nested:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            return write(cursor)
    except failed:
        return None
    finally:
        cursor.close()


def _write_fast(
    connection: BaseDatabaseWrapper,
    backend: _Backend,
    batch: Batch,
    rollups: RollupBuffer | None,
    using: str,
) -> _Written | None:
    """PostgreSQL, the common case: every sample is new and every device exists.

    Samples are COPYed straight into ``monitoring_sample`` (no temp table, no ``ON
    CONFLICT``, no device check), and so are the minute rollups. A duplicate key or a
    deleted device fails the attempt as a whole (``_try_fast``): None then, with nothing
    of it left, and the caller writes the batch the careful way.

    The rollup plan is made while the server inserts the samples: the COPY's data is sent
    first and its end awaited after, so the client's work and the server's overlap.
    """

    def write(cursor: Any) -> _Written:
        samples = batch.samples
        ensure_partitions({s.t // DAY_MS for s in samples}, using=using, cursor=cursor)
        with cursor.copy(
            "COPY monitoring_sample (t, device_id, ok, latency_us, error) FROM STDIN"
        ) as copy:
            copy.write(_copy_text(samples))
            inserted = [(s.t, s.device_id, s.ok, s.latency_us) for s in samples]
            planned = _plan_rollups(inserted, rollups)
        return _write_rest(
            cursor,
            backend,
            inserted,
            len(samples),
            list(batch.states.values()),
            batch.events,
            planned,
            dropped=0,
            fast=True,
        )

    return _try_fast(connection, using, write)


def _write_careful(
    cursor: Any, backend: _Backend, batch: Batch, rollups: RollupBuffer | None, using: str
) -> _Written:
    """Drop the rows of devices deleted meanwhile; insert only the samples not stored yet."""
    existing = _existing_device_ids(cursor, backend, batch.device_ids())
    samples = [s for s in batch.samples if s.device_id in existing]
    states = [s for s in batch.states.values() if s.device_id in existing]
    events = [e for e in batch.events if e.device_id in existing]
    dropped = len(batch) - len(samples) - len(states) - len(events)
    if backend.vendor == "postgresql" and samples:
        ensure_partitions({s.t // DAY_MS for s in samples}, using=using, cursor=cursor)
    inserted = _insert_samples(cursor, backend, samples)
    plan, upserts = _plan_rollups(inserted, rollups)
    planned = (plan, _rows_of_existing_devices(cursor, backend, upserts, existing))
    return _write_rest(
        cursor, backend, inserted, len(samples), states, events, planned, dropped=dropped
    )


def _plan_rollups(
    inserted: Sequence[tuple[int, int, Any, int | None]], rollups: RollupBuffer | None
) -> tuple[FlushPlan | None, dict[RollupKey, list[Any]]]:
    """The buffer's plan for freshly inserted rows (None without a buffer) and the rollup
    rows to write now."""
    if rollups is None:
        return None, with_coarser_tiers(aggregate_minutes(inserted))
    plan = rollups.split(inserted, rollups.clock())
    return plan, plan.rows


def _write_rest(
    cursor: Any,
    backend: _Backend,
    inserted: Sequence[tuple[int, int, Any, int | None]],
    offered: int,
    states: Sequence[StateRow],
    events: Sequence[EventRow],
    planned: tuple[FlushPlan | None, dict[RollupKey, list[Any]]],
    *,
    dropped: int,
    fast: bool = False,
) -> _Written:
    """After the samples: their rollups (``planned``), the device states, the events
    (``fast``: inside ``_write_fast``'s attempt, where a conflict sends the batch the
    careful way)."""
    adapt = backend.adapt_datetime
    plan, upserts = planned
    if fast and plan is not None:
        # Closed minutes: new rows. (Without a buffer a minute is written again by every
        # batch that has a sample of it: upserts.)
        _write_rollups_fast(cursor, backend, upserts)
    else:
        _upsert_rollups(cursor, backend, upserts)
    if states and backend.vendor == "postgresql":
        _upsert_states_copy(cursor, states)
    elif states:
        rows = [
            (
                s.device_id,
                s.status,
                adapt(s.since),
                adapt(s.last_check_at),
                adapt(s.last_ok_at),
                s.latency_ms,
                s.consecutive_failures,
                s.consecutive_successes,
                s.last_error,
                s.flapping,
                adapt(s.changed_at),
                s.flap_history,
            )
            for s in states
        ]
        cursor.executemany(backend.state_upsert(), rows)
    if events:
        cursor.executemany(
            backend.event_insert(),
            [(e.device_id, adapt(e.at), e.from_status, e.to_status, e.message) for e in events],
        )
    report = WriteReport(
        samples_inserted=len(inserted),
        samples_ignored=offered - len(inserted),
        rollup_rows=len(upserts),
        states=len(states),
        events=len(events),
        dropped_rows=dropped,
    )
    return _Written(report, plan)


def flush_rollups(
    rollups: RollupBuffer, *, everything: bool = False, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Write the buffered minutes and days that have closed (all of them with
    ``everything``).

    One transaction; returns the rollup rows written. The writer calls this when no batch
    came to close a minute, and with ``everything`` when it stops.
    """
    plan = rollups.split((), rollups.clock(), everything=everything)
    if not plan:
        return 0
    connection = connections[using]
    backend = _backend(connection)
    with transaction.atomic(using=using):
        cursor = _raw_cursor(connection)
        try:
            upserts = _rows_of_existing_devices(cursor, backend, plan.rows)
            if backend.vendor != "postgresql" or (
                _try_fast(
                    connection, using, lambda fast: _write_rollups_fast(fast, backend, upserts)
                )
                is None
            ):
                _upsert_rollups(cursor, backend, upserts)
        finally:
            cursor.close()
    rollups._commit(plan)
    return len(upserts)


def _lock_rollups(cursor: Any, backend: _Backend) -> None:
    """PostgreSQL: serialise a read-compare-write of rollups against every other writer.

    SQLite needs nothing: its one write transaction at a time already does it (the
    statements that write start the write transaction before they read).
    """
    if backend.vendor == "postgresql":
        cursor.execute("LOCK TABLE monitoring_rollup IN SHARE ROW EXCLUSIVE MODE")


def recover_rollups(start_s: int, end_s: int, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Add to the minute (and hour, day) rollups what raw samples in ``[start_s, end_s)``
    hold and the rollups do not, then to the day rows of the days that end by ``end_s``
    (from the day before ``start_s``'s on) what their hour rows hold and they do not;
    returns the (device, minute) and (device, day) buckets repaired.

    This is how the buckets a writer held in memory when it died get written: the samples
    (and the hour rows of the minutes it had closed) were committed, their rollups were
    not. Only buckets that no live writer can still hold open may be repaired (``end_s``
    at most ``rollups.OPEN_HORIZON_S`` before the current minute; a day only once it has
    ended by then): a bucket still in some writer's memory would otherwise be counted
    twice. Idempotent: a repaired bucket matches its source and is left alone next time.
    """
    connection = connections[using]
    backend = _backend(connection)
    start_s, end_s = start_s - start_s % 60, end_s - end_s % 60
    repaired = 0
    with transaction.atomic(using=using):
        cursor = _raw_cursor(connection)
        try:
            _lock_rollups(cursor, backend)
            if start_s < end_s:
                repaired += _recover_minutes(cursor, backend, start_s, end_s)
            repaired += _recover_days(cursor, backend, start_s - start_s % DAY_S - DAY_S, end_s)
        finally:
            cursor.close()
    return repaired


def _recover_minutes(cursor: Any, backend: _Backend, start_s: int, end_s: int) -> int:
    """The minutes of ``[start_s, end_s)`` whose rollups miss some of their raw samples."""
    p = backend.placeholder
    # Per-minute totals first (one range scan of each table), then the detail of the
    # few minutes that differ.
    cursor.execute(
        f"SELECT t / 60000, COUNT(*) FROM monitoring_sample WHERE t >= {p} AND t < {p} "
        "GROUP BY t / 60000",
        [start_s * 1000, end_s * 1000],
    )
    raw = {int(minute) * 60: int(n) for minute, n in cursor.fetchall()}
    cursor.execute(
        "SELECT bucket, SUM(count) FROM monitoring_rollup "
        f"WHERE resolution = 60 AND bucket >= {p} AND bucket < {p} GROUP BY bucket",
        [start_s, end_s],
    )
    rolled = {int(bucket): int(n) for bucket, n in cursor.fetchall()}
    upserts: dict[RollupKey, list[Any]] = {}
    for minute in sorted(raw):
        if raw[minute] <= rolled.get(minute, 0):
            continue
        cursor.execute(
            "SELECT t, device_id, ok, latency_us FROM monitoring_sample "
            f"WHERE t >= {p} AND t < {p}",
            [minute * 1000, (minute + 60) * 1000],
        )
        fresh = aggregate_minutes(cursor.fetchall())
        columns = ", ".join(f'"{c}"' for c in _ROLLUP_COLUMNS[3:])
        cursor.execute(
            f"SELECT device_id, {columns} FROM monitoring_rollup "
            f"WHERE resolution = 60 AND bucket = {p}",
            [minute],
        )
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
        fresh_by_device = {key[0]: agg for key, agg in fresh.items()}
        for device_id, delta in _missing(fresh_by_device, stored).items():
            upserts[(device_id, 60, minute)] = delta
    _upsert_rollups(cursor, backend, with_coarser_tiers(upserts))
    return len(upserts)


def _missing(truth: dict[int, list[Any]], stored: dict[int, Sequence[Any]]) -> dict[int, list[Any]]:
    """Per device, what a stored rollup row lacks of ``truth`` (an aggregate of its source):
    all of it when there is no row, the difference when the row counts fewer checks, with
    the source's own min/max (the upsert keeps the extreme of both)."""
    missing: dict[int, list[Any]] = {}
    for device_id, agg in truth.items():
        have = stored.get(device_id)
        if have is None:
            missing[device_id] = agg
        elif agg[0] > have[0]:
            delta = list(agg)
            for index in ADDITIVE_INDEXES:
                delta[index] -= have[index] or 0
            missing[device_id] = delta
    return missing


def _recover_days(cursor: Any, backend: _Backend, start_s: int, end_s: int) -> int:
    """The days from ``start_s`` that end by ``end_s`` whose day rows miss some of their
    hour rows: the hours a killed writer had summed into a still-open day in memory."""
    first, end = start_s - start_s % DAY_S, end_s - end_s % DAY_S
    if end <= first:
        return 0
    p = backend.placeholder
    cursor.execute(
        f"SELECT bucket / {DAY_S} * {DAY_S}, SUM(count) FROM monitoring_rollup "
        f"WHERE resolution = {HOUR_S} AND bucket >= {p} AND bucket < {p} "
        f"GROUP BY bucket / {DAY_S} * {DAY_S}",
        [first, end],
    )
    hours = {int(day): int(n) for day, n in cursor.fetchall()}
    cursor.execute(
        "SELECT bucket, SUM(count) FROM monitoring_rollup "
        f"WHERE resolution = {DAY_S} AND bucket >= {p} AND bucket < {p} GROUP BY bucket",
        [first, end],
    )
    days = {int(day): int(n) for day, n in cursor.fetchall()}
    additive = ", ".join(f'SUM("{c}")' for c in ROLLUP_VALUE_COLUMNS[:4])
    histogram = ", ".join(f'SUM("{c}")' for c in HISTOGRAM_COLUMNS)
    stored_columns = ", ".join(f'"{c}"' for c in ROLLUP_VALUE_COLUMNS)
    upserts: dict[RollupKey, list[Any]] = {}
    for day in sorted(hours):
        if hours[day] <= days.get(day, 0):
            continue
        cursor.execute(
            f"SELECT device_id, {additive}, MIN(latency_min_ms), MAX(latency_max_ms), "
            f"{histogram} FROM monitoring_rollup WHERE resolution = {HOUR_S} "
            f"AND bucket >= {p} AND bucket < {p} GROUP BY device_id",
            [day, day + DAY_S],
        )
        summed = {row[0]: list(row[1:]) for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT device_id, {stored_columns} FROM monitoring_rollup "
            f"WHERE resolution = {DAY_S} AND bucket = {p}",
            [day],
        )
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
        for device_id, delta in _missing(summed, stored).items():
            upserts[(device_id, DAY_S, day)] = delta
    _upsert_rollups(cursor, backend, upserts)
    return len(upserts)


def backfill_day_rollups(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Build the 1-day tier from the 1-hour tier for the days before it existed.

    Needed once, on a database that had hour rollups before the writer kept days: the
    first day row of each device was started mid-day and older days have none. Rebuilds
    (replaces) every day up to and including the oldest day that has a day row, from its
    hour rows; a no-op once done (then no hour row is older than the oldest day row).
    Returns the day rows written.
    """
    connection = connections[using]
    backend = _backend(connection)
    oldest = (
        "SELECT (SELECT MIN(bucket) FROM monitoring_rollup WHERE resolution = 3600), "
        "(SELECT MIN(bucket) FROM monitoring_rollup WHERE resolution = 86400)"
    )

    def needed(cursor: Any) -> tuple[bool, int | None]:
        cursor.execute(oldest)
        oldest_hour, oldest_day = cursor.fetchone()
        done = oldest_hour is None or (oldest_day is not None and oldest_hour >= oldest_day)
        return not done, oldest_day

    with connection.cursor() as cursor:
        if not needed(cursor)[0]:
            return 0  # the usual case: no lock taken
    with transaction.atomic(using=using):
        cursor = _raw_cursor(connection)
        try:
            _lock_rollups(cursor, backend)
            todo, oldest_day = needed(cursor)
            if not todo:
                return 0
            until = DAY_S * 10**6 if oldest_day is None else int(oldest_day) + DAY_S
            p = backend.placeholder
            columns = ", ".join(f'"{c}"' for c in _ROLLUP_COLUMNS)
            sums = ", ".join(
                f'SUM("{c}")' for c in ("count", "ok_count", "latency_count", "latency_sum_ms")
            )
            histogram = ", ".join(f'SUM("{c}")' for c in HISTOGRAM_COLUMNS)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in _ROLLUP_COLUMNS[3:])
            cursor.execute(
                f"INSERT INTO monitoring_rollup ({columns}) "
                f"SELECT device_id, {DAY_S}, bucket / {DAY_S} * {DAY_S}, {sums}, "
                f"MIN(latency_min_ms), MAX(latency_max_ms), {histogram} "
                f"FROM monitoring_rollup WHERE resolution = 3600 AND bucket < {p} "
                f"GROUP BY device_id, bucket / {DAY_S} * {DAY_S} "
                f"ON CONFLICT (device_id, resolution, bucket) DO UPDATE SET {sets}",
                [until],
            )
            return max(cursor.rowcount, 0)
        finally:
            cursor.close()


# -- read ------------------------------------------------------------------------------


def samples_for_device(
    device_id: int,
    start_ms: int,
    end_ms: int,
    limit: int = 10_000,
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> list[dict[str, Any]]:
    """Raw samples of one device with ``start_ms <= t < end_ms``, oldest first.

    When there are more than ``limit``, the newest ``limit`` are returned. Each item is
    ``{"t": ms, "ok": bool, "latency_ms": float | None, "error": code | None}``.
    The key is time-first (fast ingest), so this scans the time range across all
    devices: keep ranges short (minutes to hours) and read rollups for anything longer.
    """
    # Django's cursor: "%s" placeholders on every database.
    sql = (
        "SELECT t, ok, latency_us, error FROM monitoring_sample "
        "WHERE t >= %s AND t < %s AND device_id = %s ORDER BY t DESC LIMIT %s"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [start_ms, end_ms, device_id, limit])
        rows = cursor.fetchall()
    rows.reverse()
    return [
        {
            "t": t,
            "ok": bool(ok),
            "latency_ms": None if latency_us is None else latency_us / 1000.0,
            "error": error,
        }
        for t, ok, latency_us, error in rows
    ]


def prune_samples(before_ms: int, *, chunk_ms: int = 600_000, using: str = DEFAULT_DB_ALIAS) -> int:
    """Delete raw samples older than ``before_ms``; returns how many.

    Deletes in time slices of ``chunk_ms``, one short transaction each, so the collector's
    writer is never locked out for long (the key is time-first: each slice is a range).
    """
    connection = connections[using]
    deleted = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(t) FROM monitoring_sample")
        row = cursor.fetchone()
    oldest = row[0] if row else None
    if oldest is None:
        return 0
    start = int(oldest)
    while start < before_ms:
        stop = min(start + chunk_ms, before_ms)
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("DELETE FROM monitoring_sample WHERE t < %s", [stop])
            deleted += max(cursor.rowcount, 0)
        start = stop
    return deleted
