"""The simulated network's shape: sites, a device tree per site, and addresses.

Per site: core router(s) → distribution switches → access switches → phones, PCs
and access points; firewalls hang off the core, servers off the distribution layer.
Everything is a pure function of the device count and the seed, and devices are
numbered so that a parent always comes before its children.
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass

# The same values as resourcemonitor.inventory.models.Kind (not imported: no Django here).
ROUTER = "router"
SWITCH = "switch"
FIREWALL = "firewall"
ACCESS_POINT = "access_point"
PHONE = "phone"
PC = "pc"
SERVER = "server"
KINDS = (ROUTER, SWITCH, FIREWALL, ACCESS_POINT, PHONE, PC, SERVER)

MAX_DEVICES = 20_000
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

# (name, prefix used in device names). More sites than this get a number suffix.
SITES = (
    ("London", "lon"),
    ("Paris", "par"),
    ("Berlin", "ber"),
    ("Madrid", "mad"),
    ("Rome", "rom"),
    ("Amsterdam", "ams"),
    ("Dublin", "dub"),
    ("Vienna", "vie"),
    ("Prague", "prg"),
    ("Warsaw", "waw"),
    ("Stockholm", "sto"),
    ("Oslo", "osl"),
    ("Lisbon", "lis"),
    ("Brussels", "bru"),
    ("Zurich", "zrh"),
    ("Helsinki", "hel"),
    ("Copenhagen", "cph"),
    ("Athens", "ath"),
    ("Budapest", "bud"),
    ("Bucharest", "buh"),
    ("Munich", "muc"),
    ("Milan", "mil"),
    ("Barcelona", "bcn"),
    ("Lyon", "lys"),
    ("Hamburg", "ham"),
    ("Frankfurt", "fra"),
    ("Manchester", "man"),
    ("Edinburgh", "edi"),
    ("Geneva", "gva"),
    ("Krakow", "krk"),
    ("Porto", "opo"),
    ("Rotterdam", "rtm"),
)
# Roughly a campus each; past 8,000 devices the sites grow instead (10,000 make 32 of ~313).
DEVICES_PER_SITE = 250
MAX_SITES = 32

# The order a tiny site is filled in, so that 8 devices already hold every kind.
_SMALL_SITE_ORDER = ("core", "dist", "acc", "phone", "pc", "ap", "fw", "srv")


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """One device of the simulated network, as the control API describes it."""

    id: int
    name: str
    kind: str
    site: str
    parent_id: int | None
    address: str
    port: int


class AddressSpaceError(ValueError):
    """The address base leaves too little room in 127.0.0.0/8 for the devices."""


def device_addresses(base: str, count: int) -> list[str]:
    """``count`` consecutive loopback addresses from ``base``, skipping .0 and .255.

    Raises ``AddressSpaceError`` when ``base`` is not in 127.0.0.0/8 or the run
    would leave it.
    """
    try:
        first = ipaddress.IPv4Address(base)
    except ValueError as error:
        raise AddressSpaceError(f"{base!r} is not an IPv4 address") from error
    if first not in LOOPBACK:
        raise AddressSpaceError(f"{base} is not in 127.0.0.0/8")
    addresses: list[str] = []
    value = int(first)
    last = int(LOOPBACK.broadcast_address) - 1
    while len(addresses) < count:
        if value > last:
            raise AddressSpaceError(
                f"{base} leaves room for only {len(addresses)} devices in 127.0.0.0/8"
            )
        # .0 and .255 look like network and broadcast addresses to people and some tools.
        if value & 0xFF not in (0, 0xFF):
            addresses.append(str(ipaddress.IPv4Address(value)))
        value += 1
    return addresses


def site_names(count: int) -> list[tuple[str, str]]:
    """``count`` (site name, name prefix) pairs; beyond the list, numbered repeats."""
    names = []
    for index in range(count):
        name, prefix = SITES[index % len(SITES)]
        round_ = index // len(SITES)
        if round_:
            name, prefix = f"{name} {round_ + 1}", f"{prefix}{round_ + 1}"
        names.append((name, prefix))
    return names


def site_count(devices: int) -> int:
    """How many sites ``devices`` devices are spread over (two at least, when possible)."""
    if devices < 2:
        return 1
    return min(MAX_SITES, max(2, math.ceil(devices / DEVICES_PER_SITE)))


def _layer_sizes(budget: int) -> dict[str, int]:
    """How many of each role a site with ``budget`` devices gets."""
    if budget < len(_SMALL_SITE_ORDER):
        return {role: 1 if i < budget else 0 for i, role in enumerate(_SMALL_SITE_ORDER)}
    sizes = {
        "core": 2 if budget >= 300 else 1,
        "fw": max(1, round(budget / 400)),
        "dist": max(1, budget // 100),
        "srv": max(1, budget // 50),
        "acc": max(1, budget // 20),
    }
    endpoints = budget - sum(sizes.values())
    # A few of each endpoint kind first, so small sites have them all; then a mix
    # that looks like an office: mostly PCs and phones, an AP per handful of desks.
    sizes["phone"], sizes["pc"], sizes["ap"] = 1, 1, 1
    rest = endpoints - 3
    sizes["ap"] += rest * 15 // 100
    sizes["phone"] += rest * 40 // 100
    sizes["pc"] += rest - (rest * 15 // 100) - (rest * 40 // 100)
    return sizes


_ROLE_KIND = {
    "core": ROUTER,
    "dist": SWITCH,
    "acc": SWITCH,
    "fw": FIREWALL,
    "srv": SERVER,
    "phone": PHONE,
    "pc": PC,
    "ap": ACCESS_POINT,
}


def generate(
    devices: int, seed: int = 1, address_base: str = "127.10.0.1", port: int = 8080
) -> list[SimulatedDevice]:
    """The simulated network: ``devices`` devices, ids 1..N, parents before children.

    Deterministic for a given (devices, seed); the seed shuffles which access switch
    each endpoint hangs off, so different seeds give differently shaped trees.
    """
    if not 1 <= devices <= MAX_DEVICES:
        raise ValueError(f"devices must be from 1 to {MAX_DEVICES} (got {devices})")
    addresses = device_addresses(address_base, devices)
    rng = random.Random(seed)
    sites = site_names(site_count(devices))
    budgets = [devices // len(sites)] * len(sites)
    for index in range(devices % len(sites)):
        budgets[index] += 1

    result: list[SimulatedDevice] = []

    def add(role: str, number: int, site: str, prefix: str, parent: int | None) -> int:
        device_id = len(result) + 1
        result.append(
            SimulatedDevice(
                id=device_id,
                name=f"{prefix}-{role}-{number}",
                kind=_ROLE_KIND[role],
                site=site,
                parent_id=parent,
                address=addresses[device_id - 1],
                port=port,
            )
        )
        return device_id

    for (site, prefix), budget in zip(sites, budgets, strict=True):
        sizes = _layer_sizes(budget)
        cores = [add("core", i + 1, site, prefix, None) for i in range(sizes["core"])]
        dists = [
            add("dist", i + 1, site, prefix, cores[i % len(cores)]) for i in range(sizes["dist"])
        ]
        # A tiny site may lack a layer; hang things off the nearest one there is.
        upper = dists or cores
        for i in range(sizes["fw"]):
            add("fw", i + 1, site, prefix, cores[i % len(cores)] if cores else None)
        for i in range(sizes["srv"]):
            add("srv", i + 1, site, prefix, upper[i % len(upper)] if upper else None)
        accs = [
            add("acc", i + 1, site, prefix, upper[i % len(upper)] if upper else None)
            for i in range(sizes["acc"])
        ]
        lower = accs or upper
        endpoint_roles = [role for role in ("phone", "pc", "ap") for _ in range(sizes[role])]
        rng.shuffle(endpoint_roles)
        counters = {"phone": 0, "pc": 0, "ap": 0}
        for i, role in enumerate(endpoint_roles):
            counters[role] += 1
            # The first endpoints go round the access switches in order (so each has
            # some); the rest land on a random one: uneven fan-out, like real floors.
            if not lower:
                parent = None
            elif i < len(lower):
                parent = lower[i]
            else:
                parent = rng.choice(lower)
            add(role, counters[role], site, prefix, parent)
    return result


def children_of(devices: list[SimulatedDevice]) -> dict[int, list[int]]:
    """Each device id mapped to its direct children's ids (leaves map to [])."""
    children: dict[int, list[int]] = {device.id: [] for device in devices}
    for device in devices:
        if device.parent_id is not None:
            children[device.parent_id].append(device.id)
    return children
