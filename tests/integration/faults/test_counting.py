"""The fault tests' ledger: what counts as lost, doubled or late (pure, no processes)."""

from __future__ import annotations

from resourcemonitor.monitoring.collector.scheduler import phase_fraction
from tests.integration.faults.harness import INTERVAL_S, count_samples

DEVICE = 7
OFFSET = phase_fraction(DEVICE) * INTERVAL_S
START = 1_800_000_000.0


def rows(*slot_delays: tuple[int, float]) -> list[tuple[int, int]]:
    """(t ms, device) for checks of ``slot`` that ran ``delay`` seconds after it."""
    return [
        (int((START + OFFSET + (slot + delay) * INTERVAL_S) * 1000), DEVICE)
        for slot, delay in slot_delays
    ]


def count(*slot_delays: tuple[int, float]):  # type: ignore[no-untyped-def]
    return count_samples(rows(*slot_delays), [DEVICE], window=(START, START + 20 * INTERVAL_S))


def test_every_slot_on_time() -> None:
    counts = count(*((slot, 0.01) for slot in range(21)))
    assert (counts.lost, counts.doubled, counts.late) == (0, 0, 0)


def test_a_check_run_late_into_the_next_slot_is_late_not_lost_and_doubled() -> None:
    on_time = [(slot, 0.01) for slot in range(21) if slot != 8]
    counts = count(*on_time, (8, 0.7))  # slot 8's check ran 0.7 intervals late
    assert (counts.lost, counts.doubled, counts.late) == (0, 0, 1)


def test_a_missing_check_is_lost_and_an_extra_one_doubled() -> None:
    counts = count(*((slot, 0.01) for slot in range(21) if slot != 8), (12, 0.2))
    assert (counts.lost, counts.doubled, counts.late) == (1, 1, 0)
