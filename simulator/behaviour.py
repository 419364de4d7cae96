"""How each simulated device behaves over time: a pure function of (seed, device, t).

Every device gets a ``Profile`` drawn from the seed: a base latency and jitter, an
availability, a failure mode, and perhaps flapping, a scheduled outage or latency
spikes. ``BehaviourModel.own_condition(device, t)`` says what the device itself is
doing ``t`` seconds after the start; ``condition(device, t, forced)`` adds the
topology (a down ancestor takes the subtree down) and forced states. Nothing here
keeps state, so a run can be replayed and tests can ask about any moment.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simulator.topology import (
    ACCESS_POINT,
    FIREWALL,
    PC,
    PHONE,
    ROUTER,
    SERVER,
    SWITCH,
    SimulatedDevice,
)

UP = "up"
DEGRADED = "degraded"
DOWN = "down"
STATES = (UP, DEGRADED, DOWN)

REFUSED = "refused"  # the listener is closed: connects are refused
HANG = "hang"  # the listener accepts and never answers

# What the control API may force; "auto" clears the force.
FORCED_STATES = (UP, DOWN, DEGRADED)
AUTO = "auto"
FORCED_DEGRADED_LATENCY_MS = 800.0

# (low, high) base round-trip in milliseconds by kind: wired kit is quick, Wi-Fi is not.
_BASE_LATENCY_MS = {
    ROUTER: (0.2, 1.0),
    SWITCH: (0.2, 1.5),
    FIREWALL: (0.5, 3.0),
    SERVER: (0.5, 5.0),
    PHONE: (1.0, 8.0),
    PC: (1.0, 6.0),
    ACCESS_POINT: (2.0, 15.0),
}
SPIKE_LATENCY_MS = (200.0, 1500.0)
SCHEDULE_PERIOD_S = 1200.0  # a scheduled outage every 20 minutes...
SCHEDULE_DURATION_S = 120.0  # ...lasting 2 minutes

# Share of devices given each special behaviour (at least one of each when possible).
FLAPPING_SHARE = 0.01
SCHEDULED_SHARE = 0.01
FLAKY_SHARE = 0.03

_OUTAGE_STREAM = 1
_SPIKE_STREAM = 2
_PROFILE_STREAM = 3
_PICK_STREAM = 4
_PACK = struct.Struct("<QQQq").pack
_MASK = (1 << 64) - 1


def _unit(seed: int, device_id: int, stream: int, index: int) -> float:
    """A uniform number in [0, 1) that depends only on its arguments.

    A hash rather than ``random.Random`` so any (device, time slot) can be asked
    about in any order, cheaply, with the same answer every run and every Python.
    """
    digest = hashlib.blake2b(
        _PACK(seed & _MASK, device_id & _MASK, stream, index), digest_size=8
    ).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _rng(seed: int, device_id: int, stream: int) -> random.Random:
    return random.Random(int(_unit(seed, device_id, stream, 0) * 2.0**53))


@dataclass(frozen=True, slots=True)
class Condition:
    """What a device is doing at one moment, as seen from the network."""

    state: str  # UP, DEGRADED or DOWN
    failure_mode: str | None  # REFUSED or HANG when DOWN, else None
    latency_ms: float | None  # typical response delay; None when DOWN

    @property
    def listening(self) -> bool:
        """Whether the device's listener should be open (all but a refused outage)."""
        return not (self.state == DOWN and self.failure_mode == REFUSED)


@dataclass(frozen=True, slots=True)
class Profile:
    """One device's behaviour, drawn once from the seed."""

    device_id: int
    base_latency_ms: float
    jitter_ms: float
    availability: float  # share of outage slots that are up (1.0: never a random outage)
    outage_slot_s: float  # random outages come in slots this long
    outage_phase_s: float
    failure_mode: str  # how its outages look: REFUSED or HANG
    flap_half_period_s: float | None  # flapping: down every other half period
    flap_phase_s: float
    schedule_offset_s: float | None  # scheduled outage: first one starts here
    spike_rate: float  # share of spike slots with a latency spike
    spike_slot_s: float
    spike_phase_s: float
    cpu_percent: float
    memory_percent: float
    boot_uptime_s: float  # how long it had been up when the simulation started

    @property
    def flapping(self) -> bool:
        return self.flap_half_period_s is not None

    @property
    def scheduled(self) -> bool:
        return self.schedule_offset_s is not None


def _next_boundary(t: float, step: float, phase: float) -> float:
    """The first time after ``t`` where ``(time + phase) / step`` is a whole number."""
    boundary = (math.floor((t + phase) / step) + 1) * step - phase
    # Rounding can land this a hair at or before t when t sits on a boundary: the
    # change is then due at once, but the answer must still be in the future.
    return boundary if boundary > t else math.nextafter(t, math.inf)


class BehaviourModel:
    """Per-device profiles for one network and seed, and the conditions they imply."""

    def __init__(self, devices: Sequence[SimulatedDevice], seed: int) -> None:
        self.seed = seed
        self.devices = list(devices)
        self._parents = [device.parent_id for device in self.devices]
        flapping, scheduled, flaky = self._pick_special(self.devices, seed)
        site_extra = {
            site: _rng(seed, index, _PROFILE_STREAM).uniform(0.0, 3.0)
            for index, site in enumerate(dict.fromkeys(device.site for device in self.devices))
        }
        self.profiles = [
            self._draw_profile(
                device,
                site_extra[device.site],
                flapping=device.id in flapping,
                scheduled=device.id in scheduled,
                flaky=device.id in flaky,
            )
            for device in self.devices
        ]

    @staticmethod
    def _pick_special(
        devices: Sequence[SimulatedDevice], seed: int
    ) -> tuple[set[int], set[int], set[int]]:
        """Which devices flap, have scheduled outages, or are flaky.

        Chosen by a seeded shuffle, not by independent draws, so that even a
        16-device demo shows one of each. Flapping goes to endpoints (a flapping core
        would drown the site); scheduled outages to switches, so each takes a subtree
        with it; flakiness to anything but a core router.
        """
        rng = _rng(seed, 0, _PICK_STREAM)
        count = len(devices)

        def pick(candidates: list[int], share: float, taken: set[int]) -> set[int]:
            free = [device_id for device_id in candidates if device_id not in taken]
            rng.shuffle(free)
            wanted = max(1, round(count * share)) if count >= 4 else 0
            return set(free[:wanted])

        endpoints = [d.id for d in devices if d.kind in (PHONE, PC, ACCESS_POINT)]
        switches = [d.id for d in devices if d.kind == SWITCH]
        others = [d.id for d in devices if d.kind in (SERVER, FIREWALL)]
        non_root = [d.id for d in devices if d.parent_id is not None]
        flapping = pick(endpoints, FLAPPING_SHARE, set())
        scheduled = pick(switches or others, SCHEDULED_SHARE, flapping)
        flaky = pick(non_root, FLAKY_SHARE, flapping | scheduled)
        return flapping, scheduled, flaky

    def _draw_profile(
        self,
        device: SimulatedDevice,
        site_extra_ms: float,
        *,
        flapping: bool,
        scheduled: bool,
        flaky: bool,
    ) -> Profile:
        rng = _rng(self.seed, device.id, _PROFILE_STREAM)
        low, high = _BASE_LATENCY_MS.get(device.kind, (0.5, 5.0))
        # Log-uniform: most devices are quick, a few are noticeably slower.
        base = math.exp(rng.uniform(math.log(low), math.log(high)))
        base += site_extra_ms * (0.0 if device.kind == ROUTER else 1.0)
        if flaky:
            availability = rng.uniform(0.8, 0.95)
        elif device.parent_id is None:
            availability = rng.uniform(0.998, 1.0)
        else:
            availability = rng.uniform(0.99, 1.0)
        return Profile(
            device_id=device.id,
            base_latency_ms=round(base, 3),
            jitter_ms=round(base * rng.uniform(0.05, 0.5), 3),
            availability=availability,
            outage_slot_s=rng.uniform(20.0, 90.0),
            outage_phase_s=rng.uniform(0.0, 90.0),
            failure_mode=HANG if rng.random() < 0.25 else REFUSED,
            flap_half_period_s=rng.uniform(10.0, 40.0) if flapping else None,
            flap_phase_s=rng.uniform(0.0, 40.0),
            # The first one comes within minutes, so a short demo sees it.
            schedule_offset_s=rng.uniform(120.0, 600.0) if scheduled else None,
            spike_rate=rng.uniform(0.0, 0.02) if rng.random() < 0.5 else 0.0,
            spike_slot_s=rng.uniform(5.0, 20.0),
            spike_phase_s=rng.uniform(0.0, 20.0),
            cpu_percent=rng.uniform(2.0, 40.0),
            memory_percent=rng.uniform(15.0, 70.0),
            boot_uptime_s=rng.uniform(3600.0, 90 * 86400.0),
        )

    def profile(self, device_id: int) -> Profile:
        """The profile of device ``device_id`` (ids start at 1)."""
        return self.profiles[device_id - 1]

    def own_down(self, device_id: int, t: float) -> bool:
        """Whether the device itself is in an outage at ``t`` (ignoring its ancestors)."""
        p = self.profiles[device_id - 1]
        half = p.flap_half_period_s
        if half is not None and math.floor((t + p.flap_phase_s) / half) % 2 == 1:
            return True
        offset = p.schedule_offset_s
        scheduled = (
            offset is not None
            and t >= offset
            and (t - offset) % SCHEDULE_PERIOD_S < SCHEDULE_DURATION_S
        )
        if scheduled:
            return True
        if p.availability < 1.0:
            slot = math.floor((t + p.outage_phase_s) / p.outage_slot_s)
            if _unit(self.seed, device_id, _OUTAGE_STREAM, slot) >= p.availability:
                return True
        return False

    def own_condition(self, device_id: int, t: float) -> Condition:
        """What the device itself does at ``t`` seconds after the start."""
        p = self.profiles[device_id - 1]
        if self.own_down(device_id, t):
            return Condition(DOWN, p.failure_mode, None)
        if p.spike_rate > 0.0:
            slot = math.floor((t + p.spike_phase_s) / p.spike_slot_s)
            draw = _unit(self.seed, device_id, _SPIKE_STREAM, slot)
            if draw < p.spike_rate:
                low, high = SPIKE_LATENCY_MS
                return Condition(DEGRADED, None, round(low + (high - low) * draw / p.spike_rate))
        return Condition(UP, None, p.base_latency_ms)

    def next_change_after(self, device_id: int, t: float) -> float:
        """A time after ``t`` at or before which ``own_condition`` cannot change.

        The next slot or period boundary of any of the device's behaviours; it may
        turn out to change nothing, but no change can come sooner.
        """
        p = self.profiles[device_id - 1]
        candidates = [math.inf]
        if p.flap_half_period_s is not None:
            candidates.append(_next_boundary(t, p.flap_half_period_s, p.flap_phase_s))
        if p.schedule_offset_s is not None:
            if t < p.schedule_offset_s:
                candidates.append(p.schedule_offset_s)
            else:
                candidates.append(
                    _next_boundary(t, SCHEDULE_PERIOD_S, -p.schedule_offset_s),
                )
                candidates.append(
                    _next_boundary(t, SCHEDULE_PERIOD_S, -p.schedule_offset_s - SCHEDULE_DURATION_S)
                )
        if p.availability < 1.0:
            candidates.append(_next_boundary(t, p.outage_slot_s, p.outage_phase_s))
        if p.spike_rate > 0.0:
            candidates.append(_next_boundary(t, p.spike_slot_s, p.spike_phase_s))
        return min(candidates)

    def forced_condition(self, device_id: int, forced: str) -> Condition:
        """The device's condition while the control API forces it to ``forced``."""
        if forced == DOWN:
            return Condition(DOWN, REFUSED, None)
        if forced == DEGRADED:
            return Condition(DEGRADED, None, FORCED_DEGRADED_LATENCY_MS)
        if forced == UP:
            return Condition(UP, None, self.profiles[device_id - 1].base_latency_ms)
        raise ValueError(f"cannot force {forced!r}; choose one of {', '.join(FORCED_STATES)}")

    def condition(
        self, device_id: int, t: float, forced: Mapping[int, str] | None = None
    ) -> Condition:
        """The device's condition at ``t`` as the network sees it.

        A force replaces the device's own behaviour; then, if any ancestor is down,
        so is the device, failing the way that ancestor fails (a forced ``up`` on a
        device does not outrank its parent being down: nothing behind a dead switch
        answers).
        """
        forced = forced or {}
        chain = [device_id]
        parent = self._parents[device_id - 1]
        while parent is not None:
            chain.append(parent)
            parent = self._parents[parent - 1]
        result: Condition | None = None
        for member in reversed(chain):
            result = derive(result, self.base_condition(member, t, forced.get(member)))
        assert result is not None
        return result

    def base_condition(self, device_id: int, t: float, forced: str | None) -> Condition:
        """The device's own condition at ``t``, with its force applied if it has one."""
        if forced is not None:
            return self.forced_condition(device_id, forced)
        return self.own_condition(device_id, t)

    def health_metrics(self, device_id: int, t: float, state: str) -> tuple[float, float]:
        """(cpu %, memory %) the device reports at ``t``: a slow wave, busier when degraded."""
        p = self.profiles[device_id - 1]
        cpu = p.cpu_percent * (1.0 + 0.3 * math.sin(t / 60.0 + device_id))
        if state == DEGRADED:
            cpu = cpu + 50.0
        memory = p.memory_percent * (1.0 + 0.05 * math.sin(t / 600.0 + device_id))
        return round(min(cpu, 100.0), 1), round(min(memory, 100.0), 1)


def derive(parent: Condition | None, own: Condition) -> Condition:
    """A device's network-visible condition from its parent's and its own."""
    if parent is not None and parent.state == DOWN:
        if own.state == DOWN and own.failure_mode == parent.failure_mode:
            return own
        return Condition(DOWN, parent.failure_mode, None)
    return own
