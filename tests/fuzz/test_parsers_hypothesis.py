"""Hypothesis over the parsers that take outside input: JSON device feeds, push ingest
payloads, inventory files. Each either returns something valid or raises its own error
type with a message; never any other exception."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resourcemonitor.inventory.io import InventoryFileError, parse_inventory
from resourcemonitor.monitoring.collector.feeds import FeedError, parse_feed
from resourcemonitor.monitoring.ingest import IngestError, parse_payload

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 1, 1, tzinfo=UTC)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "<script>alert(1)</script>", "a" * 300, "\x00", "ü", "１２７.0.0.1", "1 2"]
    ),
)
feed_entry = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(-5, 10**30), hostile_text, st.booleans(), st.none()),
        "name": st.one_of(hostile_text, st.integers(), st.none()),
        "ip_address": st.one_of(hostile_text, st.none()),
        "status": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])),
    },
)


def _check_feed(body: bytes) -> None:
    try:
        parsed = parse_feed(body)
    except FeedError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert len(parsed.entries) + len(parsed.problems) == parsed.total
    ids = [entry.external_id for entry in parsed.entries]
    names = [entry.name for entry in parsed.entries]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    for entry in parsed.entries:
        assert entry.name.strip() == entry.name and 0 < len(entry.name) <= 200
        assert entry.address and " " not in entry.address and len(entry.address) <= 255
        assert isinstance(entry.status, bool)


@FAST
@given(body=st.binary(max_size=500))
def test_feed_random_bytes(body: bytes) -> None:
    _check_feed(body)


@FAST
@given(document=json_values)
def test_feed_random_json(document: Any) -> None:
    _check_feed(json.dumps(document).encode())


@FAST
@given(entries=st.lists(feed_entry, max_size=12))
def test_feed_entries_that_lie(entries: list[dict[str, Any]]) -> None:
    _check_feed(json.dumps(entries).encode())


def test_feed_deeply_nested_is_a_feed_error() -> None:
    with pytest.raises(FeedError):
        parse_feed(b"[" * 100_000 + b"]" * 100_000)


report = st.fixed_dictionaries(
    {},
    optional={
        "device": st.one_of(hostile_text, st.integers(-3, 2**70), st.booleans(), st.none()),
        "ok": st.one_of(st.booleans(), st.none(), st.integers(0, 1)),
        "latency_ms": st.one_of(st.floats(), st.integers(-10, 10**12), st.text(max_size=5)),
        "ts": st.one_of(hostile_text, st.integers(-(10**12), 10**12), st.floats()),
        "metrics": st.one_of(
            st.dictionaries(
                hostile_text, st.one_of(st.floats(), st.booleans(), st.text(max_size=3)), max_size=4
            ),
            json_scalars,
        ),
        "error": st.one_of(hostile_text, st.integers()),
        "extra": json_scalars,
    },
)


def _check_ingest(data: Any) -> None:
    try:
        reports = parse_payload(data, now=NOW)
    except IngestError as exc:
        assert exc.field and len(exc.field) <= 120
        assert 400 <= exc.status < 500
        return
    assert reports
    for item in reports:
        assert isinstance(item.ok, bool)
        assert item.latency_ms is None or (math.isfinite(item.latency_ms) and item.latency_ms >= 0)
        assert all(math.isfinite(value) for value in item.metrics.values())


@FAST
@given(
    data=st.one_of(
        report,
        st.lists(report, max_size=5),
        st.fixed_dictionaries({"items": st.lists(report, max_size=5)}),
        json_values,
    )
)
def test_ingest_payloads(data: Any) -> None:
    _check_ingest(data)


@FAST
@given(devices=st.lists(feed_entry, max_size=5), format=st.sampled_from(["yaml", "csv"]))
def test_import_parser_with_feed_like_junk(devices: list[dict[str, Any]], format: str) -> None:
    # JSON is valid YAML: a feed saved as an inventory file must get a clear error too.
    try:
        parse_inventory(data=json.dumps({"devices": devices}).encode(), format=format)  # type: ignore[arg-type]
    except InventoryFileError as exc:
        assert str(exc)
