"""The ingest payload validator: every bad input names its field; good input round-trips."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resourcemonitor.monitoring.ingest import (
    MAX_BATCH,
    IngestError,
    Report,
    parse_payload,
    parse_report,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_one_report_with_every_field():
    report = parse_report(
        {
            "device": "lon-ap-1",
            "ok": True,
            "latency_ms": 12,
            "ts": "2026-11-27T11:59:00Z",
            "metrics": {"cpu": 0.5, "clients": 12},
        },
        now=NOW,
    )
    assert report == Report(
        "lon-ap-1",
        True,
        12.0,
        datetime(2026, 11, 27, 11, 59, tzinfo=UTC),
        {"cpu": 0.5, "clients": 12.0},
    )


def test_naive_timestamps_are_utc():
    assert parse_report({"device": 3, "ok": False, "ts": "2026-11-27T11:00:00"}, now=NOW).ts == (
        datetime(2026, 11, 27, 11, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"ok": True}, "device"),
        ({"device": True, "ok": True}, "device"),
        ({"device": "", "ok": True}, "device"),
        ({"device": 0, "ok": True}, "device"),
        ({"device": "x", "ok": "yes"}, "ok"),
        ({"device": "x"}, "ok"),
        ({"device": "x", "ok": True, "latency_ms": "12"}, "latency_ms"),
        ({"device": "x", "ok": True, "latency_ms": -1}, "latency_ms"),
        ({"device": "x", "ok": True, "latency_ms": True}, "latency_ms"),
        ({"device": "x", "ok": True, "ts": 12}, "ts"),
        ({"device": "x", "ok": True, "ts": "yesterday"}, "ts"),
        ({"device": "x", "ok": True, "ts": "2026-11-20T00:00:00Z"}, "ts"),
        ({"device": "x", "ok": True, "metrics": [1]}, "metrics"),
        ({"device": "x", "ok": True, "metrics": {"cpu": "high"}}, "metrics.cpu"),
        ({"device": "x", "ok": True, "error": 5}, "error"),
        ({"device": "x", "ok": True, "colour": "red"}, "colour"),
        ([], "items"),
        ({"items": {}}, "items"),
        ({"items": [{"device": "x", "ok": True}], "more": 1}, "more"),
        ({"items": [{"device": "x", "ok": True}, {"device": "y", "ok": 1}]}, "items[1].ok"),
        ("hello", "body"),
    ],
)
def test_bad_input_names_the_field(payload, field):
    with pytest.raises(IngestError) as caught:
        parse_payload(payload, now=NOW)
    assert caught.value.field == field
    assert 400 <= caught.value.status < 500


def test_a_huge_batch_is_refused_as_too_large():
    with pytest.raises(IngestError) as caught:
        parse_payload([{"device": "x", "ok": True}] * (MAX_BATCH + 1), now=NOW)
    assert (caught.value.field, caught.value.status) == ("items", 413)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
report_like = st.fixed_dictionaries(
    {},
    optional={
        "device": st.one_of(st.text(max_size=30), st.integers(), json_values),
        "ok": st.one_of(st.booleans(), json_values),
        "latency_ms": st.one_of(st.floats(), st.integers(), json_values),
        "ts": st.one_of(
            st.datetimes(min_value=datetime(2026, 11, 25), max_value=datetime(2026, 11, 29)).map(
                lambda d: d.isoformat()
            ),
            json_values,
        ),
        "metrics": st.one_of(
            st.dictionaries(st.text(max_size=8), st.floats(), max_size=4), json_values
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(report_like, st.lists(report_like, max_size=5), json_values))
def test_any_json_either_parses_or_names_a_field(payload):
    try:
        reports = parse_payload(payload, now=NOW)
    except IngestError as exc:
        assert exc.field
        assert 400 <= exc.status < 500
        return
    for report in reports:
        assert isinstance(report.ok, bool)
        assert report.latency_ms is None or (
            math.isfinite(report.latency_ms) and report.latency_ms >= 0
        )
        assert report.ts is None or abs(report.ts - NOW) <= timedelta(days=1)
        assert all(math.isfinite(v) for v in report.metrics.values())
