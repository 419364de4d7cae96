"""The running network's current state: each device's condition, kept up to date.

``NetworkState`` caches every device's condition so the device servers answer with a
list lookup, and changes it only when something can have changed: a device's own
behaviour crosses a slot boundary (a heap of due times, popped by ``tick``) or the
control API forces a device. A change then flows down the device's subtree. The
cached values always equal ``BehaviourModel.condition`` at the last tick.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from simulator.behaviour import AUTO, DOWN, FORCED_STATES, BehaviourModel, Condition, derive
from simulator.topology import SimulatedDevice, children_of


class UnknownDevice(LookupError):
    """No device has that id."""


class NetworkState:
    """Current conditions of all devices, forced states, and when each came up."""

    def __init__(
        self,
        devices: list[SimulatedDevice],
        model: BehaviourModel,
        clock: Callable[[], float],
    ) -> None:
        """``clock`` is a monotonic clock in seconds; time 0 is when this is created."""
        self.devices = devices
        self.model = model
        self._clock = clock
        self._started_at = clock()
        self._children = children_of(devices)
        self._forced: dict[int, str] = {}
        self.version = 0  # bumped on every change, so readers can cache their views
        t = 0.0
        self._base = [model.own_condition(device.id, t) for device in devices]
        self._effective: list[Condition] = []
        for device in devices:
            parent = None if device.parent_id is None else self._effective[device.parent_id - 1]
            self._effective.append(derive(parent, self._base[device.id - 1]))
        # None: up since before the simulation began (its uptime comes from its profile).
        self._came_up_at: list[float | None] = [None] * len(devices)
        self._due = [(model.next_change_after(device.id, t), device.id) for device in devices]
        heapq.heapify(self._due)
        # Device id → how it answers SNMP (``simulator.snmp``; set by the runner).
        self.snmp: dict[int, dict[str, Any]] = {}

    def elapsed(self) -> float:
        """Seconds since the network started."""
        return self._clock() - self._started_at

    def __len__(self) -> int:
        return len(self.devices)

    def device(self, device_id: int) -> SimulatedDevice:
        """The device with this id; ``UnknownDevice`` if there is none."""
        if not 1 <= device_id <= len(self.devices):
            raise UnknownDevice(f"no device with id {device_id} (ids run from 1 to {len(self)})")
        return self.devices[device_id - 1]

    def condition(self, device_id: int) -> Condition:
        """The device's current network-visible condition."""
        return self._effective[device_id - 1]

    def forced(self, device_id: int) -> str | None:
        """What the device is forced to, or None when it follows its behaviour."""
        return self._forced.get(device_id)

    def uptime_s(self, device_id: int, t: float) -> float:
        """How long the device has been answering at ``t``: since its last outage."""
        came_up = self._came_up_at[device_id - 1]
        if came_up is None:
            return self.model.profile(device_id).boot_uptime_s + t
        return t - came_up

    def tick(self, t: float | None = None) -> list[int]:
        """Bring the devices whose behaviour may have changed up to ``t``.

        Returns the ids whose network-visible condition changed, subtrees included.
        Cost is proportional to the devices due, not to the network.
        """
        t = self.elapsed() if t is None else t
        due: list[int] = []
        while self._due and self._due[0][0] <= t:
            _, device_id = heapq.heappop(self._due)
            heapq.heappush(self._due, (self.model.next_change_after(device_id, t), device_id))
            if device_id in self._forced:
                continue  # its behaviour does not show while forced
            own = self.model.own_condition(device_id, t)
            if own != self._base[device_id - 1]:
                self._base[device_id - 1] = own
                due.append(device_id)
        return self._propagate(due, t)

    def force(self, device_id: int, state: str, t: float | None = None) -> list[int]:
        """Force the device ``up``, ``down`` or ``degraded``, or back to ``auto``.

        Returns the ids whose network-visible condition changed.
        """
        self.device(device_id)
        t = self.elapsed() if t is None else t
        if state == AUTO:
            self._forced.pop(device_id, None)
            self._base[device_id - 1] = self.model.own_condition(device_id, t)
        elif state in FORCED_STATES:
            self._forced[device_id] = state
            self._base[device_id - 1] = self.model.forced_condition(device_id, state)
        else:
            choices = ", ".join((*FORCED_STATES, AUTO))
            raise ValueError(f"unknown state {state!r}; choose one of {choices}")
        changed = self._propagate([device_id], t)
        self.version += 1  # the force shows in the detail views even when nothing moved
        return changed

    def _propagate(self, starting: Iterable[int], t: float) -> list[int]:
        # Smallest id first: parents have smaller ids than their children, so a
        # device is recomputed only after every dirty ancestor has settled.
        pending = sorted(set(starting))
        queued = set(pending)
        changed: list[int] = []
        while pending:
            device_id = heapq.heappop(pending)
            parent_id = self.devices[device_id - 1].parent_id
            parent = None if parent_id is None else self._effective[parent_id - 1]
            new = derive(parent, self._base[device_id - 1])
            old = self._effective[device_id - 1]
            if new == old:
                continue
            self._effective[device_id - 1] = new
            changed.append(device_id)
            if old.state == DOWN and new.state != DOWN:
                self._came_up_at[device_id - 1] = t
            for child in self._children[device_id]:
                if child not in queued:
                    queued.add(child)
                    heapq.heappush(pending, child)
        if changed:
            self.version += 1
        return changed

    def detail(self, device_id: int) -> dict[str, Any]:
        """The control API's detailed view of one device."""
        device = self.device(device_id)
        condition = self._effective[device_id - 1]
        return {
            "id": device.id,
            "name": device.name,
            "kind": device.kind,
            "site": device.site,
            "parent_id": device.parent_id,
            "address": device.address,
            "port": device.port,
            "state": condition.state,
            "failure_mode": condition.failure_mode,
            "forced": self._forced.get(device_id),
            "latency_ms": condition.latency_ms,
            "snmp": self.snmp.get(device_id),
        }

    def inventory(self) -> list[dict[str, Any]]:
        """Every device in the detailed view, by id."""
        return [self.detail(device.id) for device in self.devices]

    def feed(self) -> list[dict[str, Any]]:
        """The original exercise's feed: id, name, ip_address and a boolean status."""
        return [
            {
                "id": device.id,
                "name": device.name,
                "ip_address": device.address,
                "status": self._effective[device.id - 1].state != DOWN,
            }
            for device in self.devices
        ]
