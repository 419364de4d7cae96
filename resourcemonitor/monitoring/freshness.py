"""How old a device's last check may be before its stored status stops meaning anything.

The collector writes ``DeviceState`` rows; when it dies, stalls or loses a device, those
rows keep saying ``up`` forever. Every reader (the API, the dashboard, later /metrics)
turns a stored state into what we may honestly show through :func:`effective_status`,
so "stale" means the same thing everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from resourcemonitor.monitoring.status import Status

if TYPE_CHECKING:
    from resourcemonitor.monitoring.models import DeviceState

# Never call a device stale sooner than this, however short its interval: a collector
# batches results for about a second and a busy one may run a few seconds late.
MIN_STALE_AFTER_S = 30.0
# How many intervals may pass without a check before the stored status is stale.
STALE_INTERVALS = 3


class Freshness(NamedTuple):
    status: str
    stale: bool


# Every answer is one of a handful of pairs: hand out shared ones (list endpoints call
# this 10,000 times a request).
_FRESH = {str(status): Freshness(str(status), False) for status in Status}
_NEVER_CHECKED = Freshness(Status.UNKNOWN.value, False)
_STALE = Freshness(Status.UNKNOWN.value, True)


def stale_after_s(interval_s: float) -> float:
    """Seconds without a check after which a device checked every ``interval_s`` is stale."""
    window = STALE_INTERVALS * interval_s
    return window if window > MIN_STALE_AFTER_S else MIN_STALE_AFTER_S


def effective_status(
    status: str | None, last_check_at: datetime | None, interval_s: float, now: datetime
) -> Freshness:
    """The status to show for a device, and whether its data is stale.

    - No state at all, or never checked: ``unknown``, not stale (there is nothing old to
      distrust, just nothing yet).
    - ``maintenance`` is declared by people, not measured, so it never goes stale.
    - No check for longer than ``max(3 * interval, 30 s)``: ``unknown`` and stale.
    - Otherwise the stored status.

    Takes plain values rather than a model so that list endpoints can call it on
    ``values_list()`` rows; :func:`state_freshness` is the model-shaped wrapper.
    """
    if status is None:
        return _NEVER_CHECKED
    if status == Status.MAINTENANCE:
        return _FRESH[status]
    if last_check_at is None:
        return _NEVER_CHECKED
    if (now - last_check_at).total_seconds() > stale_after_s(interval_s):
        return _STALE
    return _FRESH.get(status) or Freshness(status, False)


def state_freshness(state: DeviceState | None, interval_s: float, now: datetime) -> Freshness:
    """:func:`effective_status` for a ``DeviceState`` instance (or None when it has none)."""
    if state is None:
        return effective_status(None, None, interval_s, now)
    return effective_status(state.status, state.last_check_at, interval_s, now)
