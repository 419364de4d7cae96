"""The simulated network's shape: sites, the device tree, names and addresses."""

from __future__ import annotations

import ipaddress
import re
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.topology import (
    ACCESS_POINT,
    FIREWALL,
    KINDS,
    PC,
    PHONE,
    ROUTER,
    SERVER,
    SWITCH,
    AddressSpaceError,
    SimulatedDevice,
    children_of,
    device_addresses,
    generate,
)

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
NAME = re.compile(r"^[a-z]+\d*-(core|dist|acc|fw|srv|phone|pc|ap)-\d+$")


def _by_id(devices: list[SimulatedDevice]) -> dict[int, SimulatedDevice]:
    return {device.id: device for device in devices}


def _role(device: SimulatedDevice) -> str:
    return device.name.split("-")[1]


def assert_well_formed(devices: list[SimulatedDevice], count: int) -> None:
    """Invariants every generated network keeps, whatever its size and seed."""
    assert [device.id for device in devices] == list(range(1, count + 1))
    by_id = _by_id(devices)
    assert len({device.name for device in devices}) == count
    assert len({device.address for device in devices}) == count
    for device in devices:
        assert NAME.match(device.name), device.name
        assert device.kind in KINDS
        address = ipaddress.ip_address(device.address)
        assert address in LOOPBACK
        assert device.address.rsplit(".", 1)[1] not in ("0", "255")
        if device.parent_id is None:
            assert device.kind == ROUTER
            continue
        # Parents come first, so one pass in id order can settle a whole tree.
        assert device.parent_id < device.id
        parent = by_id[device.parent_id]
        assert parent.site == device.site


def test_sixteen_devices_have_two_sites_and_every_kind() -> None:
    devices = generate(16, seed=1)

    assert_well_formed(devices, 16)
    assert len({device.site for device in devices}) >= 2
    assert set(Counter(device.kind for device in devices)) == set(KINDS)
    assert devices[0].name == "lon-core-1"
    assert devices[0].parent_id is None
    assert devices[0].address == "127.10.0.1"
    assert {device.port for device in devices} == {8080}
    assert any(device.name.startswith("par-") for device in devices)


def test_parent_chains_follow_the_layers() -> None:
    devices = generate(1000, seed=3)
    by_id = _by_id(devices)

    def parent_role(device: SimulatedDevice) -> str:
        assert device.parent_id is not None
        return _role(by_id[device.parent_id])

    for device in devices:
        role = _role(device)
        if role == "core":
            assert device.parent_id is None
        elif role in ("dist", "fw"):
            assert parent_role(device) == "core"
        elif role in ("acc", "srv"):
            assert parent_role(device) == "dist"
        else:
            assert device.kind in (PHONE, PC, ACCESS_POINT)
            assert parent_role(device) == "acc"
    # An endpoint is four hops from its core: endpoint → acc → dist → core.
    phone = next(device for device in devices if device.kind == PHONE)
    chain = [phone.kind]
    current = phone
    while current.parent_id is not None:
        current = by_id[current.parent_id]
        chain.append(current.kind)
    assert chain == [PHONE, SWITCH, SWITCH, ROUTER]
    assert {by_id[d.parent_id].kind for d in devices if d.kind == FIREWALL and d.parent_id} == {
        ROUTER
    }
    assert {by_id[d.parent_id].kind for d in devices if d.kind == SERVER and d.parent_id} == {
        SWITCH
    }


def test_every_access_switch_has_endpoints() -> None:
    devices = generate(2000, seed=5)
    children = children_of(devices)

    for device in devices:
        if _role(device) == "acc":
            assert children[device.id], device.name


def test_same_seed_same_network_other_seed_other_shape() -> None:
    assert generate(800, seed=42) == generate(800, seed=42)
    assert generate(800, seed=42) != generate(800, seed=43)
    # Names, kinds and addresses depend on the count only; the seed moves endpoints.
    first, second = generate(800, seed=42), generate(800, seed=43)
    assert [d.address for d in first] == [d.address for d in second]


@pytest.mark.parametrize("count", [2, 3, 5, 8, 16, 17, 250, 251, 5000])
def test_small_and_large_counts_keep_two_sites(count: int) -> None:
    devices = generate(count, seed=1)

    assert_well_formed(devices, count)
    assert len({device.site for device in devices}) >= 2


def test_one_device_is_a_lone_core_router() -> None:
    [device] = generate(1, seed=1)

    assert device.kind == ROUTER
    assert device.parent_id is None


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 400), seed=st.integers(-(2**70), 2**70))
def test_any_count_and_seed_is_well_formed(count: int, seed: int) -> None:
    assert_well_formed(generate(count, seed=seed), count)


def test_ten_thousand_devices_generate_fast() -> None:
    started = time.perf_counter()
    devices = generate(10_000, seed=1)
    elapsed = time.perf_counter() - started

    assert_well_formed(devices, 10_000)
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    assert len({device.site for device in devices}) > 16


def test_addresses_skip_zero_and_broadcast_octets() -> None:
    assert device_addresses("127.10.0.253", 4) == [
        "127.10.0.253",
        "127.10.0.254",
        "127.10.1.1",
        "127.10.1.2",
    ]
    assert device_addresses("127.10.0.0", 1) == ["127.10.0.1"]


def test_addresses_must_fit_in_loopback() -> None:
    with pytest.raises(AddressSpaceError, match=r"not in 127\.0\.0\.0/8"):
        device_addresses("10.0.0.1", 1)
    with pytest.raises(AddressSpaceError, match="not an IPv4 address"):
        device_addresses("nonsense", 1)
    with pytest.raises(AddressSpaceError, match="room for only 2 devices"):
        device_addresses("127.255.255.253", 3)


def test_generate_refuses_bad_counts() -> None:
    with pytest.raises(ValueError):
        generate(0)
    with pytest.raises(ValueError):
        generate(20_001)
