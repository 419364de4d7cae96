"""The behaviour model (pure) and the network state that caches it."""

from __future__ import annotations

import itertools
import random

import pytest

from simulator.behaviour import (
    DEGRADED,
    DOWN,
    FORCED_DEGRADED_LATENCY_MS,
    HANG,
    REFUSED,
    SCHEDULE_DURATION_S,
    SCHEDULE_PERIOD_S,
    UP,
    BehaviourModel,
    Condition,
)
from simulator.network import NetworkState, UnknownDevice
from simulator.topology import ROUTER, generate


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def model() -> BehaviourModel:
    return BehaviourModel(generate(600, seed=9), seed=9)


def _down_share(model: BehaviourModel, device_id: int, samples: int, span_s: float) -> float:
    step = span_s / samples
    down = sum(model.own_down(device_id, i * step) for i in range(samples))
    return down / samples


def test_availability_matches_the_drawn_value(model: BehaviourModel) -> None:
    plain = [p for p in model.profiles if not p.flapping and not p.scheduled]
    flaky = [p for p in plain if p.availability < 0.95]
    steady = [p for p in plain if 0.99 <= p.availability < 0.999]
    assert flaky and steady

    # About 40 days in steps of a third of a slot: thousands of independent slots each.
    for profile in flaky[:3] + steady[:3]:
        share = _down_share(model, profile.device_id, 60_000, 3.5e6)
        assert share == pytest.approx(1 - profile.availability, abs=0.015), profile


def test_most_devices_are_highly_available(model: BehaviourModel) -> None:
    availabilities = [p.availability for p in model.profiles]

    assert sum(a >= 0.99 for a in availabilities) / len(availabilities) > 0.9
    assert min(availabilities) >= 0.8


def test_outages_last_tens_of_seconds(model: BehaviourModel) -> None:
    profile = min(
        (p for p in model.profiles if not p.flapping and not p.scheduled),
        key=lambda p: p.availability,
    )
    runs: list[int] = []
    current = 0
    for second in range(200_000):
        if model.own_down(profile.device_id, float(second)):
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert runs
    assert min(runs) >= 19  # slots are 20-90 s long
    assert max(runs) <= 90 * 10


def test_flapping_toggles_every_ten_to_forty_seconds(model: BehaviourModel) -> None:
    flapping = [p for p in model.profiles if p.flapping]
    assert flapping
    for profile in flapping:
        assert profile.flap_half_period_s is not None
        assert 10.0 <= profile.flap_half_period_s <= 40.0
        states = [model.own_down(profile.device_id, t * 0.5) for t in range(2000)]
        changes = sum(a != b for a, b in itertools.pairwise(states))
        # 1000 s of toggling every 10-40 s: 25 to 100 changes (outages may add a few).
        assert 20 <= changes <= 110


def test_scheduled_outage_is_two_minutes_every_twenty(model: BehaviourModel) -> None:
    scheduled = [p for p in model.profiles if p.scheduled]
    assert scheduled
    profile = scheduled[0]
    assert profile.schedule_offset_s is not None
    start = profile.schedule_offset_s + 3 * SCHEDULE_PERIOD_S
    for t in (start + 1, start + SCHEDULE_DURATION_S / 2, start + SCHEDULE_DURATION_S - 1):
        assert model.own_down(profile.device_id, t)
    # Switches chosen for schedules; the whole subtree follows.
    device = model.devices[profile.device_id - 1]
    children = [d for d in model.devices if d.parent_id == device.id]
    for child in children:
        assert model.condition(child.id, start + 1).state == DOWN


def test_same_seed_same_behaviour_other_seed_other() -> None:
    devices = generate(300, seed=4)
    first, again = BehaviourModel(devices, 4), BehaviourModel(devices, 4)
    other = BehaviourModel(devices, 5)

    assert first.profiles == again.profiles
    assert first.profiles != other.profiles
    times = [t * 7.3 for t in range(500)]
    assert [first.own_condition(17, t) for t in times] == [
        again.own_condition(17, t) for t in times
    ]


def test_every_kind_of_special_behaviour_shows_in_a_small_demo() -> None:
    model = BehaviourModel(generate(16, seed=1), 1)

    assert sum(p.flapping for p in model.profiles) == 1
    assert sum(p.scheduled for p in model.profiles) == 1
    assert sum(p.availability < 0.95 for p in model.profiles) == 1
    assert {p.failure_mode for p in model.profiles} == {REFUSED, HANG}


def test_conditions_are_well_formed(model: BehaviourModel) -> None:
    for device_id in range(1, 200):
        for t in (0.0, 33.3, 901.0, 7777.7):
            condition = model.own_condition(device_id, t)
            latency = condition.latency_ms
            if condition.state == DOWN:
                assert condition.failure_mode in (REFUSED, HANG)
                assert latency is None
                continue
            assert condition.failure_mode is None
            assert latency is not None
            if condition.state == DEGRADED:
                assert 200 <= latency <= 1500
            else:
                assert condition.state == UP
                assert 0.1 <= latency <= 20


def test_a_down_parent_takes_its_subtree_down(model: BehaviourModel) -> None:
    seen_masked = 0
    for t in range(0, 20_000, 173):
        for device in model.devices:
            if device.parent_id is None:
                continue
            parent = model.condition(device.parent_id, float(t))
            child = model.condition(device.id, float(t))
            if parent.state == DOWN:
                assert child.state == DOWN
                assert child.failure_mode == parent.failure_mode
                seen_masked += 1
    assert seen_masked > 0


def test_forced_states_override_behaviour(model: BehaviourModel) -> None:
    profile = min(model.profiles, key=lambda p: p.availability)
    device_id = profile.device_id
    down_at = next(float(t) for t in range(100_000) if model.own_down(device_id, float(t)))

    up = model.condition(device_id, down_at, {device_id: UP})
    assert up == Condition(UP, None, profile.base_latency_ms)
    assert model.condition(device_id, down_at, {device_id: DOWN}) == Condition(DOWN, REFUSED, None)
    degraded = model.condition(device_id, down_at, {device_id: DEGRADED})
    assert degraded == Condition(DEGRADED, None, FORCED_DEGRADED_LATENCY_MS)
    with pytest.raises(ValueError, match="cannot force"):
        model.forced_condition(device_id, "sideways")


def test_forcing_a_parent_down_outranks_a_forced_up_child(model: BehaviourModel) -> None:
    child = next(d for d in model.devices if d.parent_id is not None)
    assert child.parent_id is not None
    forced = {child.parent_id: DOWN, child.id: UP}

    assert model.condition(child.id, 5.0, forced) == Condition(DOWN, REFUSED, None)


def test_next_change_is_a_safe_bound(model: BehaviourModel) -> None:
    rng = random.Random(1)
    for device_id in rng.sample(range(1, len(model.devices) + 1), 60):
        t = rng.uniform(0, 10_000)
        for _ in range(30):
            later = model.next_change_after(device_id, t)
            assert later > t
            if later == float("inf"):
                break
            before = model.own_condition(device_id, t)
            for fraction in (0.25, 0.5, 0.99):
                between = t + (later - t) * fraction
                if between < later:  # a change due at once leaves no float in between
                    assert model.own_condition(device_id, between) == before
            t = later


def test_network_state_tracks_the_pure_model() -> None:
    devices = generate(400, seed=2)
    model = BehaviourModel(devices, 2)
    clock = FakeClock()
    network = NetworkState(devices, model, clock)
    rng = random.Random(7)
    forced: dict[int, str] = {}

    t = 0.0
    for _ in range(300):
        t += rng.uniform(0.0, 15.0)
        clock.now = 1000.0 + t
        network.tick()
        if rng.random() < 0.3:
            device_id = rng.randint(1, len(devices))
            state = rng.choice(["up", "down", "degraded", "auto"])
            network.force(device_id, state)
            if state == "auto":
                forced.pop(device_id, None)
            else:
                forced[device_id] = state
        for device in devices:
            assert network.condition(device.id) == model.condition(device.id, t, forced), (
                device.id,
                t,
            )
            assert network.forced(device.id) == forced.get(device.id)


def test_force_reports_the_subtree_that_changed() -> None:
    devices = generate(200, seed=1)
    model = BehaviourModel(devices, 1)
    network = NetworkState(devices, model, FakeClock())
    for device in devices:  # a calm start: everything up
        network.force(device.id, "up")
    core = next(d for d in devices if d.kind == ROUTER)

    changed = network.force(core.id, "down")

    subtree = {core.id}
    for device in devices:
        if device.parent_id in subtree:
            subtree.add(device.id)
    assert set(changed) == subtree
    assert all(network.condition(i).state == DOWN for i in subtree)
    assert network.feed()[core.id - 1]["status"] is False

    network.force(core.id, "up")
    assert all(network.condition(i).state == UP for i in subtree)


def test_force_rejects_unknown_devices_and_states() -> None:
    devices = generate(16, seed=1)
    network = NetworkState(devices, BehaviourModel(devices, 1), FakeClock())

    with pytest.raises(UnknownDevice):
        network.force(17, "up")
    with pytest.raises(ValueError, match="unknown state"):
        network.force(1, "sideways")


def test_uptime_restarts_after_an_outage() -> None:
    devices = generate(16, seed=1)
    clock = FakeClock()
    network = NetworkState(devices, BehaviourModel(devices, 1), clock)
    device_id = next(d.id for d in devices if network.condition(d.id).state != "down")
    for device in devices:
        network.force(device.id, "up")

    assert network.uptime_s(device_id, 10.0) > 3600  # up since before the simulation
    network.force(device_id, "down", t=20.0)
    network.force(device_id, "up", t=30.0)
    assert network.uptime_s(device_id, 45.0) == pytest.approx(15.0)


def test_detail_and_feed_shapes() -> None:
    devices = generate(16, seed=1)
    network = NetworkState(devices, BehaviourModel(devices, 1), FakeClock())

    detail = network.detail(1)
    assert set(detail) == {
        "id",
        "name",
        "kind",
        "site",
        "parent_id",
        "address",
        "port",
        "state",
        "failure_mode",
        "forced",
        "latency_ms",
        "snmp",
    }
    assert detail["snmp"] is None  # no SNMP agents unless --snmp asks
    feed = network.feed()
    assert [set(entry) for entry in feed] == [{"id", "name", "ip_address", "status"}] * 16
    assert all(isinstance(entry["status"], bool) for entry in feed)
    assert len(network.inventory()) == 16
