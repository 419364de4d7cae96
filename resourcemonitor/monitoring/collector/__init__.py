"""The collector: scheduler, probes, state machine, feed poller and the writer thread.

Entry points: ``Collector`` (``await collector.run()``, ``await collector.run_once()``)
and ``run_collector()``, which runs one on a fresh event loop (uvloop when importable)
with SIGTERM/SIGINT wired to a clean stop. ``resmon collect`` is a thin wrapper.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from resourcemonitor.monitoring.collector.inventory import Shard
from resourcemonitor.monitoring.collector.runner import Collector


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (it is on Linux), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_collector(
    collector: Collector,
    *,
    once: bool = False,
    duration: float | None = None,
    handle_signals: bool = True,
) -> int:
    """Run ``collector`` to the end on a new event loop; returns the checks done."""

    async def main() -> int:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, collector.request_stop)
        if once:
            return await collector.run_once()
        await collector.run(duration=duration)
        return collector.checks_total

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main())


__all__ = ["Collector", "Shard", "event_loop_factory", "run_collector"]
